//! Readiness: whether a cacher serves watches and lists.

use crate::sync::atomic::{AtomicU8, Ordering};

/// Whether a cacher serves watches and lists.
///
/// The discriminants are the order of the lifecycle: readiness only moves to a larger
/// one, which is how it is stored (`fetch_max` on the number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
#[non_exhaustive]
pub enum Readiness {
    /// The initial state is still loading; watches and lists return `NotReady`.
    Pending = 0,
    /// Serving.
    Ready = 1,
    /// Shut down; watches end with `Closed`.
    Stopped = 2,
}

/// The readiness of one cacher. Transitions go forward only: Pending → Ready → Stopped,
/// or Pending → Stopped.
#[derive(Debug)]
pub(crate) struct ReadyState(AtomicU8);

impl ReadyState {
    pub(crate) fn new(initial: Readiness) -> Self {
        Self(AtomicU8::new(initial as u8))
    }

    /// `Acquire`: a reader that sees `Ready` also sees the initial state the dispatcher
    /// published before it stored `Ready` (`Release`).
    pub(crate) fn get(&self) -> Readiness {
        match self.0.load(Ordering::Acquire) {
            n if n == Readiness::Pending as u8 => Readiness::Pending,
            n if n == Readiness::Ready as u8 => Readiness::Ready,
            _ => Readiness::Stopped,
        }
    }

    /// Moves forward to `next`; never backwards (a late `Ready` after `Stopped` is ignored).
    pub(crate) fn advance(&self, next: Readiness) {
        self.0.fetch_max(next as u8, Ordering::AcqRel);
    }
}
