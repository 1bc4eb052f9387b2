//! Readiness: whether a cacher serves watches and lists.

use crate::sync::atomic::{AtomicU8, Ordering};

/// Whether a cacher serves watches and lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// The initial state is still loading; watches and lists return `NotReady`.
    Pending,
    /// Serving.
    Ready,
    /// Shut down; watches end with `Closed`.
    Stopped,
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
            0 => Readiness::Pending,
            1 => Readiness::Ready,
            _ => Readiness::Stopped,
        }
    }

    /// Moves forward to `next`; never backwards (a late `Ready` after `Stopped` is ignored).
    pub(crate) fn advance(&self, next: Readiness) {
        self.0.fetch_max(next as u8, Ordering::AcqRel);
    }
}
