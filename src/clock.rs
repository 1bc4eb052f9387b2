//! Time, injectable: bookmarks, the dispatch budget and waits for a future revision read
//! the cacher's [`Clock`], so tests drive them with a [`ManualClock`] instead of sleeping.

use crate::sync::atomic::{AtomicU64, Ordering};
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
    inner: Arc<ManualState>,
}

#[derive(Default)]
struct ManualState {
    /// Nanoseconds since the origin. `Release` on advance, `Acquire` on read: a thread
    /// that sees the new time sees what the advancing thread did before.
    now_nanos: AtomicU64,
    sleepers: Mutex<Vec<thread::Thread>>,
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by` and wakes every thread that asked to be woken.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.inner.now_nanos.fetch_add(nanos, Ordering::AcqRel);
        let sleepers = lock(&self.inner.sleepers).clone();
        for sleeper in sleepers {
            sleeper.unpark();
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.inner.now_nanos.load(Ordering::Acquire))
    }

    fn wake_on_advance(&self, thread: thread::Thread) {
        let mut sleepers = lock(&self.inner.sleepers);
        if !sleepers.iter().any(|sleeper| sleeper.id() == thread.id()) {
            sleepers.push(thread);
        }
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock").field("now", &self.now()).finish()
    }
}
