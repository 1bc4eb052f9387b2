//! Wake-ups that take no lock and make no syscall when nobody sleeps.
//!
//! A [`Parker`] belongs to one sleeper (a watch's consumer, or the dispatcher); a
//! [`WaitList`] collects the parkers of many sleepers waiting for the same thing (watches
//! waiting for the window to grow, producers waiting for room in the incoming ring).
//! Both follow the eventcount pattern: the sleeper *arms* (announces it may sleep), then
//! re-checks its condition, then sleeps; the notifier *publishes* its data, then looks at
//! the armed flag and takes a lock only if a sleeper announced itself. That keeps the
//! hot path (a dispatcher pushing to a watcher that is busy reading) free of locks and
//! wake-ups: the wake-up is paid only when the consumer may really be parked.
//!
//! Orderings, all in this file: the sleeper's "armed" write and the notifier's data
//! write are each followed by a `SeqCst` fence before the other side's read (Dekker's
//! pattern). The two fences are totally ordered, so either the notifier sees the flag
//! (and wakes) or the sleeper's re-check sees the data (and does not sleep); a wake-up
//! can never fall between the two.
//!
//! The flags written from both sides (`armed`, `enlisted`) are only ever written with
//! read-modify-writes (`swap`), never plain stores. An RMW reads the latest value, so
//! the writes form one chain in modification order. That costs nothing the algorithm
//! notices (a sleeper arms only when it may sleep), and it is what lets loom check this
//! file: loom orders stores only through happens-before, so a plain store beside an
//! unsynchronised RMW lets it return a superseded value — an outcome the memory model
//! forbids — and report a lost wake-up that cannot happen.

use crate::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use crate::sync::{lock, thread, Arc, Mutex};
use std::task::{Wake, Waker};

/// The wake-up slot of one sleeper.
#[derive(Debug, Default)]
pub(crate) struct Parker {
    /// Set by the sleeper before its last re-check; cleared by the notifier that wakes it.
    armed: AtomicBool,
    /// Whether this parker sits in a [`WaitList`] now (so it is listed at most once).
    enlisted: AtomicBool,
    /// The waker of the sleeper's last `arm`; replaced only when it would wake another
    /// task, so a busy consumer does not clone a waker per wait.
    waker: Mutex<Option<Waker>>,
}

impl Parker {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Announces that the sleeper may sleep and will be woken through `waker`. The caller
    /// must re-check its condition after this and sleep only if it still holds.
    pub(crate) fn arm(&self, waker: &Waker) {
        {
            let mut slot = lock(&self.waker);
            if !slot.as_ref().is_some_and(|current| current.will_wake(waker)) {
                *slot = Some(waker.clone());
            }
        }
        // A swap, not a store: see the module docs on flags written from both sides.
        self.armed.swap(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Wakes the sleeper whether or not it armed, through the waker of its last `arm`:
    /// for a sleeper that also sleeps on a timer without arming (the dispatcher gathering
    /// a batch) and must hear of a rare event (shutdown) at once. Call after publishing
    /// the data the sleeper re-checks.
    pub(crate) fn interrupt(&self) {
        let waker = lock(&self.waker).clone();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Wakes the sleeper if it armed since the last wake. Call after publishing the data
    /// the sleeper re-checks.
    pub(crate) fn wake(&self) {
        fence(Ordering::SeqCst);
        // The plain load first keeps the cache line shared while the sleeper is busy.
        if self.armed.load(Ordering::Relaxed) && self.armed.swap(false, Ordering::Acquire) {
            // Woken outside the lock: a waker may run code that arms this parker again
            // (an executor polling the task inline), which would deadlock on the lock.
            let waker = lock(&self.waker).clone();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// Sleepers waiting for one shared condition.
#[derive(Debug, Default)]
pub(crate) struct WaitList {
    /// How many parkers are listed; read without the lock by `notify_all`.
    listed: AtomicUsize,
    parkers: Mutex<Vec<Arc<Parker>>>,
}

impl WaitList {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Arms `parker` with `waker` and lists it. As with [`Parker::arm`], the caller must
    /// re-check its condition afterwards.
    pub(crate) fn arm(&self, parker: &Arc<Parker>, waker: &Waker) {
        parker.arm(waker);
        if !parker.enlisted.swap(true, Ordering::AcqRel) {
            let mut parkers = lock(&self.parkers);
            parkers.push(parker.clone());
            self.listed.store(parkers.len(), Ordering::Relaxed);
        }
        fence(Ordering::SeqCst);
    }

    /// Wakes every listed sleeper. Call after publishing the data they re-check.
    pub(crate) fn notify_all(&self) {
        fence(Ordering::SeqCst);
        if self.listed.load(Ordering::Relaxed) == 0 {
            return;
        }
        let parkers = {
            let mut parkers = lock(&self.parkers);
            self.listed.store(0, Ordering::Relaxed);
            std::mem::take(&mut *parkers)
        };
        for parker in parkers {
            // A swap, not a store: see the module docs on flags written from both sides.
            parker.enlisted.swap(false, Ordering::Release);
            parker.wake();
        }
    }
}

/// Wakes a thread parked in a blocking wait.
struct ThreadWaker(thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

/// A waker that unparks the current thread.
pub(crate) fn thread_waker() -> Waker {
    Waker::from(std::sync::Arc::new(ThreadWaker(thread::current())))
}

/// Runs `future` to completion on this thread, parking it between polls (a spurious
/// unpark only polls once more).
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = thread_waker();
    let mut context = std::task::Context::from_waker(&waker);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        thread::park();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool as StdAtomicBool;

    /// A waker that checks, when woken, whether its parker's lock is free: an executor
    /// that polls the woken task inline arms the parker again from inside `wake`.
    struct ReArming {
        /// Weak: the parker holds this waker, so a strong reference would be a cycle.
        parker: std::sync::Weak<Parker>,
        lock_was_free: StdAtomicBool,
    }

    impl Wake for ReArming {
        fn wake(self: std::sync::Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            let parker = self.parker.upgrade().expect("the parker outlives its wake-up");
            let free = parker.waker.try_lock().is_ok();
            self.lock_was_free.store(free, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_waker_runs_without_the_parkers_lock() {
        let parker = Arc::new(Parker::new());
        let waker =
            std::sync::Arc::new(ReArming { parker: Arc::downgrade(&parker), lock_was_free: false.into() });
        parker.arm(&Waker::from(waker.clone()));
        parker.wake();
        assert!(waker.lock_was_free.load(Ordering::Relaxed), "woken while holding the lock");
    }
}
