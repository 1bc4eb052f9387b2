//! Errors, one enum per operation family. Messages are lowercase, say what happened and
//! what to do next.

use std::fmt;
use std::time::Duration;

/// A blocking or async publish failed: the cacher has shut down. The rejected value rides
/// back inside, so nothing is lost: the caller may keep it or drop it knowingly.
///
/// Waiting publishes (`put`, `put_async`, …) can fail only this way; the non-blocking
/// ones return [`TryPublishError`], which can also say the ring is full.
#[derive(PartialEq, Eq)]
pub struct PublishError<T>(pub T);

impl<T> PublishError<T> {
    /// The change that was not published.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for PublishError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PublishError(..)")
    }
}

impl<T> fmt::Display for PublishError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(CLOSED_MESSAGE)
    }
}

impl<T> std::error::Error for PublishError<T> {}

const CLOSED_MESSAGE: &str = "cacher is shut down; the change was not applied";

/// Why a non-blocking publish (`try_put`, `try_delete`) was refused; the value comes back.
#[derive(PartialEq, Eq)]
pub enum TryPublishError<T> {
    /// The incoming ring is full; a waiting publish would have waited.
    Full(T),
    /// The cacher has shut down; no change will be applied any more.
    Closed(T),
}

impl<T> TryPublishError<T> {
    /// The change that was not published.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(value) | Self::Closed(value) => value,
        }
    }
}

impl<T> From<PublishError<T>> for TryPublishError<T> {
    fn from(error: PublishError<T>) -> Self {
        Self::Closed(error.0)
    }
}

impl<T> fmt::Debug for TryPublishError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TryPublishError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("incoming ring is full; retry, or use a waiting publish"),
            Self::Closed(_) => f.write_str(CLOSED_MESSAGE),
        }
    }
}

impl<T> std::error::Error for TryPublishError<T> {}

/// Why a watch could not start, or how it ended. Every variant that ends a stream says
/// where a new watch may resume.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchError {
    /// The requested revision is older than the window can replay. `oldest` is the
    /// oldest revision a new watch may start from (`Start::Revision(oldest)` succeeds).
    ///
    /// A watch that ends this way has yielded every matching event up to `requested`, and
    /// perhaps part of the next revision's (the rest was evicted before it got there):
    /// list again rather than resume.
    Expired {
        /// The revision the watch asked to continue after.
        requested: u64,
        /// The oldest revision a watch may start from now.
        oldest: u64,
    },
    /// The requested revision was not reached within the wait for a future revision.
    TooNew {
        /// The revision the watch asked for.
        requested: u64,
        /// The cacher's revision when the wait ended.
        current: u64,
    },
    /// The watcher fell too far behind and was terminated under
    /// [`SlowWatcherPolicy::Terminate`](crate::SlowWatcherPolicy::Terminate). Every
    /// matching event up to `resume_from` was delivered; `Start::Revision(resume_from)`
    /// continues without loss.
    TooSlow {
        /// The revision to resume after.
        resume_from: u64,
    },
    /// The cacher has not loaded its initial state yet.
    NotReady {
        /// A reasonable delay before trying again.
        retry_after: Duration,
    },
    /// The cacher was shut down; every buffered event was delivered before this.
    Closed,
    /// The watch options cannot be served by this cacher.
    InvalidOptions {
        /// What is wrong with them.
        reason: &'static str,
    },
}

impl fmt::Display for WatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Expired { requested, oldest } => {
                write!(f, "revision {requested} is older than the window (oldest {oldest}); list again")
            }
            Self::TooNew { requested, current } => {
                write!(f, "revision {requested} is newer than the cacher's revision {current}; retry later")
            }
            Self::TooSlow { resume_from } => {
                write!(f, "watcher was too slow and was terminated; watch again from revision {resume_from}")
            }
            Self::NotReady { retry_after } => {
                write!(f, "cacher is not ready yet; retry after {} ms", retry_after.as_millis())
            }
            Self::Closed => f.write_str("cacher is shut down"),
            Self::InvalidOptions { reason } => write!(f, "invalid watch options: {reason}"),
        }
    }
}

impl std::error::Error for WatchError {}

/// Why a conditional write ([`Producer::put_if`](crate::Producer::put_if),
/// [`Producer::delete_if`](crate::Producer::delete_if)) was not applied.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConditionalError<T> {
    /// The check failed (or a delete found no object): nothing was written. `current`
    /// is the object the check saw, `None` for a missing key.
    Rejected {
        /// The key's object when the dispatcher judged the change.
        current: Option<std::sync::Arc<T>>,
    },
    /// The cacher has shut down; nothing was written.
    Closed,
}

impl<T> fmt::Display for ConditionalError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected { current: Some(_) } => f.write_str("the current object failed the check"),
            Self::Rejected { current: None } => f.write_str("the key does not exist"),
            Self::Closed => f.write_str("cacher is shut down"),
        }
    }
}

impl<T: fmt::Debug> std::error::Error for ConditionalError<T> {}

/// Why a `list` or `get` could not be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListError {
    /// The cacher has not loaded its initial state yet.
    NotReady {
        /// A reasonable delay before trying again.
        retry_after: Duration,
    },
    /// `At::AtLeast(requested)` was not reached within the wait for a future revision.
    TooNew {
        /// The revision the list asked for.
        requested: u64,
        /// The cacher's revision when the wait ended.
        current: u64,
    },
    /// The list options cannot be served by this cacher.
    InvalidOptions {
        /// What is wrong with them.
        reason: &'static str,
    },
    /// `At::Exact(requested)` cannot be served: it is older than the window can roll the
    /// state back to, or it falls inside a relist's gap (between the revision a relist's
    /// difference starts from and its own), where the state was never seen. `oldest` is
    /// the oldest revision above `requested` an exact list can be served at now.
    Expired {
        /// The revision the list asked for.
        requested: u64,
        /// The oldest revision above `requested` an exact list may ask for now.
        oldest: u64,
    },
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotReady { retry_after } => {
                write!(f, "cacher is not ready yet; retry after {} ms", retry_after.as_millis())
            }
            Self::TooNew { requested, current } => {
                write!(f, "revision {requested} is newer than the cacher's revision {current}; retry later")
            }
            Self::InvalidOptions { reason } => write!(f, "invalid list options: {reason}"),
            Self::Expired { requested, oldest } => {
                write!(
                    f,
                    "the state at revision {requested} is no longer known (oldest {oldest}); list the latest"
                )
            }
        }
    }
}

impl std::error::Error for ListError {}

/// Why an [`Upstream`](crate::Upstream) call applied nothing; what was sent rides back in
/// `rejected` (or the variant's value), so nothing is lost.
///
/// The waiting forms (`apply`, `apply_async`, …) fail with every variant but `Full`; the
/// `try_` forms also with `Full`.
#[non_exhaustive]
pub enum UpstreamError<P> {
    /// The revision does not come after the last one this handle sent (`apply` needs a
    /// newer revision; `progress` and `relist` one at least as new).
    OutOfOrder {
        /// The revision given.
        revision: u64,
        /// The last revision sent.
        last: u64,
        /// What was not applied.
        rejected: P,
    },
    /// No relist has loaded the upstream's state yet; the first call must be `relist`.
    NotLoaded(P),
    /// A relist names this key more than once.
    DuplicateKey {
        /// The key named twice.
        key: std::sync::Arc<str>,
        /// What was not applied.
        rejected: P,
    },
    /// The incoming ring is full (only from the `try_` forms); a waiting call would have
    /// waited.
    Full(P),
    /// The cacher has shut down.
    Closed(P),
}

impl<P> UpstreamError<P> {
    /// The same error about `f(rejected)`.
    pub(crate) fn map<Q>(self, f: impl FnOnce(P) -> Q) -> UpstreamError<Q> {
        match self {
            Self::OutOfOrder { revision, last, rejected } => {
                UpstreamError::OutOfOrder { revision, last, rejected: f(rejected) }
            }
            Self::DuplicateKey { key, rejected } => {
                UpstreamError::DuplicateKey { key, rejected: f(rejected) }
            }
            Self::NotLoaded(rejected) => UpstreamError::NotLoaded(f(rejected)),
            Self::Full(rejected) => UpstreamError::Full(f(rejected)),
            Self::Closed(rejected) => UpstreamError::Closed(f(rejected)),
        }
    }

    /// What was not applied.
    pub fn into_inner(self) -> P {
        match self {
            Self::OutOfOrder { rejected, .. }
            | Self::DuplicateKey { rejected, .. }
            | Self::NotLoaded(rejected)
            | Self::Full(rejected)
            | Self::Closed(rejected) => rejected,
        }
    }
}

impl<P> fmt::Debug for UpstreamError<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfOrder { revision, last, .. } => f
                .debug_struct("OutOfOrder")
                .field("revision", revision)
                .field("last", last)
                .finish_non_exhaustive(),
            Self::DuplicateKey { key, .. } => {
                f.debug_struct("DuplicateKey").field("key", key).finish_non_exhaustive()
            }
            Self::NotLoaded(_) => f.write_str("NotLoaded(..)"),
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<P> fmt::Display for UpstreamError<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfOrder { revision, last, .. } => {
                write!(f, "revision {revision} does not follow the last revision {last}; nothing was applied")
            }
            Self::NotLoaded(_) => f.write_str("the upstream's state is not loaded yet; relist first"),
            Self::DuplicateKey { key, .. } => {
                write!(f, "the relist names key {key:?} more than once; nothing was applied")
            }
            Self::Full(_) => f.write_str("incoming ring is full; retry, or use a waiting call"),
            Self::Closed(_) => f.write_str(CLOSED_MESSAGE),
        }
    }
}

impl<P> std::error::Error for UpstreamError<P> {}

/// Why [`Watch::try_recv`](crate::Watch::try_recv) returned no event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing is ready now; the watch goes on.
    Empty,
    /// The watch has ended, for this reason (which says where to resume); every later
    /// call returns the same.
    Ended(WatchError),
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("no event is ready yet; try again later"),
            Self::Ended(reason) => write!(f, "watch ended: {reason}"),
        }
    }
}

impl std::error::Error for TryRecvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Empty => None,
            Self::Ended(reason) => Some(reason),
        }
    }
}

/// Why [`Watch::recv_timeout`](crate::Watch::recv_timeout) returned no event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecvTimeoutError {
    /// Nothing arrived in time; the watch goes on.
    Timeout,
    /// The watch has ended, for this reason (which says where to resume); every later
    /// call returns the same.
    Ended(WatchError),
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("no event arrived in time; wait again"),
            Self::Ended(reason) => write!(f, "watch ended: {reason}"),
        }
    }
}

impl std::error::Error for RecvTimeoutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Timeout => None,
            Self::Ended(reason) => Some(reason),
        }
    }
}
