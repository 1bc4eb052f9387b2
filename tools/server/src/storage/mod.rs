//! The storage seam, as Kubernetes' `CacheDelegator` draws it: every write goes to the
//! storage, every read and watch is served from the resource's cacher, which the storage
//! keeps current.
//!
//! Two implementations: [`memory`] (the default: the cacher is the store, its data lives
//! as long as the process) and [`etcd`] (etcd is the source of truth, shared by any
//! number of servers; a reflector per resource feeds the cacher's upstream handle). The
//! handlers see only [`Storage`].

mod delegator;
pub(crate) mod etcd;
pub(crate) mod memory;
mod reflector;

pub(crate) use delegator::{Delegator, Page, Prelude, ReadAt, WatchStart};

use crate::object::Object;
use crate::status::ApiError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How long a consistent read, or a read at a revision the cache has not reached, waits
/// for the cache (kube-apiserver's wait).
pub(crate) const CACHE_WAIT: Duration = Duration::from_secs(3);

/// Waits (up to the cacher's wait for a future revision) until `cacher` has applied
/// `revision`.
pub(crate) async fn caught_up(
    cacher: &watchcache::Cacher<Object>,
    revision: u64,
) -> Result<(), watchcache::ListError> {
    // A list of nothing: it waits like any list, and copies no object.
    let nothing = watchcache::ListOptions::new().prefix("\u{10ffff}").at(watchcache::At::AtLeast(revision));
    cacher.list_async(nothing).await.map(drop)
}

/// Computes an object's next state from its current one (a replace or a patch); may
/// refuse with the client's error.
pub(crate) type UpdateFn<'a> = dyn Fn(&Object) -> Result<Object, ApiError> + Send + Sync + 'a;

/// A write the storage acknowledged: the object as stored (for a delete, its last state)
/// and the revision the write got.
#[derive(Debug)]
pub(crate) struct Stored {
    pub(crate) object: Arc<Object>,
    pub(crate) revision: u64,
}

/// One change from the storage's history: the object's state before and after it, with
/// the cacher's key (`None`: absent, or no object of the resource).
#[derive(Debug)]
pub(crate) struct Changed {
    pub(crate) revision: u64,
    pub(crate) before: Option<(String, Object)>,
    pub(crate) after: Option<(String, Object)>,
}

/// What a delete must find before it deletes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Preconditions {
    pub(crate) revision: Option<u64>,
    pub(crate) uid: Option<String>,
}

impl Preconditions {
    fn hold_for(&self, current: &Object) -> bool {
        self.revision.is_none_or(|revision| current.revision() == revision)
            && self.uid.as_ref().is_none_or(|uid| current.uid() == uid)
    }

    fn any(&self) -> bool {
        self.revision.is_some() || self.uid.is_some()
    }
}

/// The object a storage call is about, for its errors.
#[derive(Debug, Clone)]
pub(crate) struct Target<'a> {
    /// The resource, group-qualified (see [`crate::resource::ResourceDef::group_resource`]).
    pub(crate) resource: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) name: &'a str,
}

/// Why a storage call did not write.
#[derive(Debug)]
pub(crate) enum StorageError {
    NotFound {
        resource: String,
        name: String,
    },
    AlreadyExists {
        resource: String,
        name: String,
    },
    /// A precondition (a `resourceVersion` or a UID) did not hold.
    Conflict {
        resource: String,
        name: String,
    },
    /// The next state was refused (a replace or patch the client got wrong).
    Refused(ApiError),
    /// The cache did not reach the storage's revision in time.
    TooNew {
        requested: u64,
        current: u64,
    },
    /// The revision is older than the storage keeps (etcd's compaction).
    Compacted {
        requested: u64,
        oldest: u64,
    },
    /// The storage did not answer.
    Unavailable(String),
    /// The cacher could not answer (loading, options it cannot serve, …).
    Cache(watchcache::ListError),
}

impl StorageError {
    fn not_found(target: &Target<'_>) -> Self {
        Self::NotFound { resource: target.resource.to_owned(), name: target.name.to_owned() }
    }

    fn already_exists(target: &Target<'_>) -> Self {
        Self::AlreadyExists { resource: target.resource.to_owned(), name: target.name.to_owned() }
    }

    fn conflict(target: &Target<'_>) -> Self {
        Self::Conflict { resource: target.resource.to_owned(), name: target.name.to_owned() }
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::NotFound { resource, name } => ApiError::not_found(&resource, &name),
            StorageError::AlreadyExists { resource, name } => ApiError::already_exists(&resource, &name),
            StorageError::Conflict { resource, name } => ApiError::conflict(&resource, &name),
            StorageError::Refused(error) => error,
            StorageError::TooNew { requested, current } => ApiError::too_new(requested, current),
            StorageError::Compacted { requested, oldest } => ApiError::expired(requested, oldest),
            StorageError::Unavailable(reason) => ApiError::unavailable(reason),
            StorageError::Cache(error) => ApiError::from(error),
        }
    }
}

/// Where one resource's objects are written, and what keeps its cacher current.
#[async_trait::async_trait]
pub(crate) trait Storage: Send + Sync + fmt::Debug {
    /// Creates `object` unless an object of that name exists.
    async fn create(&self, target: Target<'_>, object: Object) -> Result<Stored, StorageError>;

    /// Replaces the current object with `next(current)`, as a compare-and-swap on its
    /// revision, retried while other writes win the race; with `precondition`, only if
    /// the current object is at that revision (else `Conflict`).
    async fn update(
        &self,
        target: Target<'_>,
        precondition: Option<u64>,
        next: &UpdateFn<'_>,
    ) -> Result<Stored, StorageError>;

    /// Deletes the current object if `preconditions` hold for it.
    async fn delete(&self, target: Target<'_>, preconditions: &Preconditions)
        -> Result<Stored, StorageError>;

    /// Waits until the cacher reflects every write the storage had acknowledged when
    /// this was called (a consistent read); returns the revision it is good for.
    async fn sync(&self) -> Result<u64, StorageError>;

    /// The objects at exactly `revision`, in key order, from the storage's own history
    /// (for a read older than the cacher's window); `Compacted` when the storage no
    /// longer has it.
    async fn state_at(&self, revision: u64) -> Result<Vec<Object>, StorageError>;

    /// Every change to the resource after revision `after` through revision `through`,
    /// in order, exactly as the storage's history has them (for a watch from before the
    /// cacher's window, which the cacher serves from `through` on); `Compacted` when the
    /// storage no longer has them.
    async fn changes(&self, after: u64, through: u64) -> Result<Vec<Changed>, StorageError>;

    /// Stops what the storage runs in the background.
    fn shutdown(&self);
}
