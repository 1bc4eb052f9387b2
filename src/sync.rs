//! The one place that chooses between `std` and `loom` primitives.
//!
//! Library code names `crate::sync::…` only, so `RUSTFLAGS="--cfg loom"` swaps every
//! atomic, lock, thread handle, thread-local and `UnsafeCell` for loom's model-checked
//! versions without touching the algorithms. [`ArcCell`] is the one composite here:
//! `arc-swap` in normal builds (readers never block), a mutex-guarded `Arc` under loom
//! (which cannot see inside `arc-swap`); both give the same "load the latest published
//! `Arc`" contract.

#[cfg(not(loom))]
pub(crate) use std::sync::{atomic, Arc, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::{thread, thread_local};

#[cfg(loom)]
pub(crate) use loom::sync::{atomic, Arc, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::{thread, thread_local};

/// Statistics counters: `std`'s atomics even under loom. Every access is `Relaxed` and
/// no decision of the library reads them, so they order nothing; modelling them would
/// only multiply the interleavings a loom model explores.
pub(crate) mod counter {
    pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize};
}

/// Locks `mutex`, ignoring poisoning: every critical section in this crate leaves its
/// data consistent before anything in it can panic, so a poisoned lock is still sound.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// An `UnsafeCell` whose accesses go through closures, so loom can track them.
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(
    #[cfg(not(loom))] std::cell::UnsafeCell<T>,
    #[cfg(loom)] loom::cell::UnsafeCell<T>,
);

impl<T> UnsafeCell<T> {
    pub(crate) fn new(value: T) -> Self {
        #[cfg(not(loom))]
        return Self(std::cell::UnsafeCell::new(value));
        #[cfg(loom)]
        return Self(loom::cell::UnsafeCell::new(value));
    }

    /// Runs `f` with a shared pointer to the contents; the caller upholds the aliasing
    /// rules of the structure that owns the cell.
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        #[cfg(not(loom))]
        return f(self.0.get());
        #[cfg(loom)]
        return self.0.with(f);
    }

    /// Runs `f` with a mutable pointer to the contents; the caller guarantees exclusivity.
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(not(loom))]
        return f(self.0.get());
        #[cfg(loom)]
        return self.0.with_mut(f);
    }
}

/// A cell holding an `Arc<T>` that one writer replaces and many readers load.
pub(crate) struct ArcCell<T> {
    #[cfg(not(loom))]
    inner: arc_swap::ArcSwap<T>,
    #[cfg(loom)]
    inner: Mutex<Arc<T>>,
}

impl<T> ArcCell<T> {
    pub(crate) fn new(value: Arc<T>) -> Self {
        #[cfg(not(loom))]
        return Self { inner: arc_swap::ArcSwap::new(value) };
        #[cfg(loom)]
        return Self { inner: Mutex::new(value) };
    }

    /// The latest published value.
    pub(crate) fn load(&self) -> Arc<T> {
        #[cfg(not(loom))]
        return self.inner.load_full();
        #[cfg(loom)]
        return lock(&self.inner).clone();
    }

    /// Runs `read` on the latest published value without taking a reference count:
    /// for a short read by many threads at once, where each `load` would be a contended
    /// increment and decrement of the one count they share. `read` must not block, as it
    /// may hold one of the thread's few `arc-swap` debt slots (or, under loom, the lock).
    pub(crate) fn with<R>(&self, read: impl FnOnce(&T) -> R) -> R {
        #[cfg(not(loom))]
        return read(&self.inner.load());
        #[cfg(loom)]
        return read(&lock(&self.inner));
    }

    /// Publishes `value`; later `load`s see it (or something newer).
    pub(crate) fn store(&self, value: Arc<T>) {
        #[cfg(not(loom))]
        self.inner.store(value);
        #[cfg(loom)]
        {
            *lock(&self.inner) = value;
        }
    }
}

impl<T> std::fmt::Debug for ArcCell<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArcCell").finish_non_exhaustive()
    }
}

/// Parks the current thread for at most `timeout`.
///
/// Loom has no timed park, and its models drive time with a [`ManualClock`], which
/// unparks the threads that sleep on it whenever it advances; real time never passes in a
/// model. So under loom this parks until unparked: a timer that can fire only when the
/// clock advances is woken by that advance, and a wake-up that never comes is a bug the
/// model reports as a deadlock. (Yielding instead turned every timed wait into a spin
/// loop, which multiplies the interleavings past what a model can explore.)
///
/// [`ManualClock`]: crate::ManualClock
pub(crate) fn park_timeout(timeout: std::time::Duration) {
    #[cfg(not(loom))]
    std::thread::park_timeout(timeout);
    #[cfg(loom)]
    {
        let _ = timeout;
        loom::thread::park();
    }
}
