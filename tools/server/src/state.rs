//! What every request can reach.

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
    /// Flips to `true` when the server begins to shut down: open watches end.
    pub(crate) shutting_down: tokio::sync::watch::Receiver<bool>,
}

pub(crate) type AppState = Arc<State>;
