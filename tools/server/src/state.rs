//! What every request can reach.

use crate::auth::Tokens;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::Settings;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Everything a request needs.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) registry: Registry,
    pub(crate) metrics: Metrics,
    pub(crate) settings: Settings,
    /// One permit per open watch.
    pub(crate) watch_slots: Arc<Semaphore>,
    /// One permit per read (not a watch) in flight.
    pub(crate) reading_slots: Semaphore,
    /// One permit per write in flight.
    pub(crate) mutating_slots: Semaphore,
    /// The bearer tokens accepted; `None`: no authentication.
    pub(crate) tokens: Option<Tokens>,
    /// Flips to `true` when the server begins to shut down: open watches end.
    pub(crate) shutting_down: tokio::sync::watch::Receiver<bool>,
}

pub(crate) type AppState = Arc<State>;

/// Room for `limit` holders at once; `0`, or more than a semaphore can count, is as many
/// as it can (kube-apiserver's `0`: no limit).
pub(crate) fn slots(limit: usize) -> Semaphore {
    let limit = if limit == 0 { Semaphore::MAX_PERMITS } else { limit.min(Semaphore::MAX_PERMITS) };
    Semaphore::new(limit)
}
