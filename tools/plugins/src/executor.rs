//! The operation executor: at most one operation (register or unregister) per key at a
//! time, and exponential backoff per key after a failure, as the kubelet's
//! `nestedpendingoperations` does.
//!
//! - A second operation on a key while one runs is refused ([`StartError::AlreadyPending`]).
//! - A failed (or panicking) operation starts the key's backoff: 500 ms, doubling per
//!   failure up to 2 min 2 s; until it has passed, a new operation on the key is refused
//!   ([`StartError::BackingOff`]). A success clears it.
//! - Keys are independent: one key backing off or running never delays another.
//!
//! Time is tokio's clock, so tests pause and advance it instead of sleeping.

use futures_util::FutureExt;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The first backoff after a failure.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// The longest backoff (the kubelet's 2 min 2 s).
pub const MAX_BACKOFF: Duration = Duration::from_secs(122);

/// Why an operation did not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// An operation on this key is running.
    AlreadyPending,
    /// The key's last operation failed; the next may start after `retry_in`.
    BackingOff {
        /// How long until the key may run again.
        retry_in: Duration,
    },
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AlreadyPending => f.write_str("an operation on this key is already pending"),
            Self::BackingOff { retry_in } => {
                write!(f, "the last operation on this key failed; retry in {} ms", retry_in.as_millis())
            }
        }
    }
}

impl std::error::Error for StartError {}

/// How an operation ended, when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationError {
    /// The operation returned an error.
    Failed(String),
    /// The operation panicked; the panic is contained and counted as a failure.
    Panicked,
}

impl std::fmt::Display for OperationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(reason) => write!(f, "operation failed: {reason}"),
            Self::Panicked => f.write_str("operation panicked"),
        }
    }
}

impl std::error::Error for OperationError {}

/// A key's state; absent from the map when idle with no backoff.
#[derive(Debug, Default)]
struct KeyState {
    running: bool,
    /// The last backoff and when it ends.
    backoff: Option<(Duration, Instant)>,
}

/// Counters since the executor was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecutorStats {
    /// Operations started.
    pub started: u64,
    /// Operations that failed or panicked.
    pub failures: u64,
    /// Starts refused because the key was backing off.
    pub refused_backing_off: u64,
    /// Starts refused because an operation on the key was running.
    pub refused_pending: u64,
}

#[derive(Debug, Default)]
struct Inner {
    keys: HashMap<String, KeyState>,
    stats: ExecutorStats,
}

/// Runs operations on tokio tasks, one per key at a time. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct OperationExecutor {
    inner: Arc<Mutex<Inner>>,
}

impl OperationExecutor {
    /// An executor with no key running or backing off.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts `operation` for `key` on a tokio task, unless one is running for the key or
    /// the key is backing off. The handle resolves to the operation's outcome, after the
    /// executor has recorded it.
    ///
    /// # Errors
    /// [`StartError`] when the operation was not started.
    pub fn start<F>(
        &self,
        key: &str,
        operation: F,
    ) -> Result<JoinHandle<Result<(), OperationError>>, StartError>
    where
        F: Future<Output = Result<(), String>> + Send + 'static,
    {
        {
            let mut inner = self.lock();
            let now = Instant::now();
            let state = inner.keys.entry(key.to_owned()).or_default();
            let refusal = if state.running {
                Some(StartError::AlreadyPending)
            } else {
                state
                    .backoff
                    .filter(|(_, until)| *until > now)
                    .map(|(_, until)| StartError::BackingOff { retry_in: until - now })
            };
            match refusal {
                Some(refusal) => {
                    match refusal {
                        StartError::AlreadyPending => inner.stats.refused_pending += 1,
                        StartError::BackingOff { .. } => inner.stats.refused_backing_off += 1,
                    }
                    return Err(refusal);
                }
                None => {
                    state.running = true;
                    inner.stats.started += 1;
                }
            }
        }
        let executor = self.clone();
        let key = key.to_owned();
        Ok(tokio::spawn(async move {
            let outcome = match AssertUnwindSafe(operation).catch_unwind().await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(reason)) => Err(OperationError::Failed(reason)),
                Err(_) => Err(OperationError::Panicked),
            };
            executor.finish(&key, outcome.is_ok());
            outcome
        }))
    }

    /// Records the end of `key`'s operation.
    fn finish(&self, key: &str, succeeded: bool) {
        let mut inner = self.lock();
        if !succeeded {
            inner.stats.failures += 1;
        }
        let Some(state) = inner.keys.get_mut(key) else { return };
        state.running = false;
        if succeeded {
            inner.keys.remove(key);
        } else {
            let backoff = match state.backoff {
                Some((last, _)) => (last * 2).min(MAX_BACKOFF),
                None => INITIAL_BACKOFF,
            };
            state.backoff = Some((backoff, Instant::now() + backoff));
        }
    }

    /// Whether an operation on `key` is running.
    pub fn is_pending(&self, key: &str) -> bool {
        self.lock().keys.get(key).is_some_and(|state| state.running)
    }

    /// The counters so far.
    pub fn stats(&self) -> ExecutorStats {
        self.lock().stats
    }
}
