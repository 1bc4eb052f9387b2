//! Time, injectable: bookmarks, the dispatch budget and waits for a future revision read
//! the cacher's [`Clock`], so tests drive them with a [`ManualClock`] instead of sleeping.

use crate::sync::{lock, thread, Arc, Mutex};
use std::fmt;
use std::time::{Duration, Instant};

/// A source of monotonic time for a cacher.
///
/// `now` is the time elapsed since an arbitrary, fixed origin. A clock that does not
/// follow real time implements `wake_on_advance` so that threads sleeping until a
/// deadline notice when it moves.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The time since this clock's origin; never decreases.
    fn now(&self) -> Duration;

    /// Asks the clock to unpark `thread` whenever it advances by other means than real
    /// time. Real-time clocks ignore it (the default).
    fn wake_on_advance(&self, thread: thread::Thread) {
        let _ = thread;
    }
}

/// Real monotonic time ([`Instant`]); the default clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self { origin: Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to; for tests and simulations.
///
/// Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use watchcache::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(clock.now(), Duration::from_secs(2));
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualState>>,
}

#[derive(Default)]
struct ManualState {
    now: Duration,
    sleepers: Vec<thread::Thread>,
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by` and wakes every thread that asked to be woken.
    pub fn advance(&self, by: Duration) {
        let sleepers = {
            let mut state = lock(&self.inner);
            state.now += by;
            state.sleepers.clone()
        };
        for sleeper in sleepers {
            sleeper.unpark();
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        lock(&self.inner).now
    }

    fn wake_on_advance(&self, thread: thread::Thread) {
        let mut state = lock(&self.inner);
        if !state.sleepers.iter().any(|sleeper| sleeper.id() == thread.id()) {
            state.sleepers.push(thread);
        }
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock").field("now", &self.now()).finish()
    }
}
