//! Where each verb goes, as Kubernetes' `CacheDelegator` says it: writes to the storage,
//! reads and watches to the cacher — consistent ones once the cacher has caught up with
//! the storage, and ones older than the cacher's window from the storage's history
//! while it has it.

use super::{caught_up, Changed, Preconditions, Storage, StorageError, Stored, Target, UpdateFn};
use crate::object::Object;
use crate::resource::ResourceDef;
use crate::selector::Selection;
use std::sync::Arc;
use watchcache::{At, Cacher, ListError, Start, Watch, WatchError};

/// Which state a read reflects, as a `resourceVersion` and `resourceVersionMatch` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadAt {
    /// No `resourceVersion`: every write acknowledged before the read (a quorum read).
    Consistent,
    /// `resourceVersion=0`: whatever the cacher has.
    Any,
    /// At least this revision (waits for it).
    NotOlderThan(u64),
    /// Exactly this revision (from the window, or the storage's history).
    Exact(u64),
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchStart {
    /// With the current state as `ADDED` events; `consistent` for no `resourceVersion`.
    Snapshot { consistent: bool },
    /// After this revision.
    After(u64),
}

/// One page of a list: after a key (from a `continue` token), at most `limit` objects.
#[derive(Debug, Clone, Default)]
pub(crate) struct Page {
    pub(crate) after: Option<String>,
    pub(crate) limit: Option<usize>,
}

/// A list's answer: objects with their keys in key order, and the revision they reflect.
#[derive(Debug)]
pub(crate) struct Listed {
    pub(crate) items: Vec<(Arc<str>, Arc<Object>)>,
    pub(crate) revision: u64,
}

/// An event a watch from before the cacher's window owes before the cacher's: one change
/// of the storage's history, as the watch's selection sees it.
#[derive(Debug)]
pub(crate) enum Prelude {
    Added(Arc<Object>),
    Modified(Arc<Object>),
    /// The object's last state, deleted (or out of the selection) at `revision`.
    Deleted(Arc<Object>, u64),
}

/// A started watch: its prelude (usually empty), then the cacher's watch.
#[derive(Debug)]
pub(crate) struct Watched {
    pub(crate) prelude: Vec<Prelude>,
    pub(crate) watch: Watch<Object>,
}

/// One resource's reads and writes.
#[derive(Debug)]
pub(crate) struct Delegator {
    def: ResourceDef,
    cacher: Cacher<Object>,
    storage: Box<dyn Storage>,
}

fn cache_error(error: ListError) -> StorageError {
    match error {
        ListError::TooNew { requested, current } => StorageError::TooNew { requested, current },
        ListError::Expired { requested, oldest } => StorageError::Compacted { requested, oldest },
        other => StorageError::Cache(other),
    }
}

impl Delegator {
    pub(crate) fn new(def: ResourceDef, cacher: Cacher<Object>, storage: Box<dyn Storage>) -> Self {
        Self { def, cacher, storage }
    }

    pub(crate) fn cacher(&self) -> &Cacher<Object> {
        &self.cacher
    }

    /// The revision the cacher must reach for a read at `at`; `None` for no wait.
    async fn reach(&self, at: ReadAt) -> Result<Option<u64>, StorageError> {
        Ok(match at {
            ReadAt::Consistent => Some(self.storage.sync().await?),
            ReadAt::Any => None,
            ReadAt::NotOlderThan(revision) | ReadAt::Exact(revision) => Some(revision),
        })
    }

    /// The object `name` in `namespace`, and the revision the answer reflects.
    pub(crate) async fn get(
        &self,
        namespace: &str,
        name: &str,
        at: ReadAt,
    ) -> Result<(Option<Arc<Object>>, u64), StorageError> {
        if let Some(revision) = self.reach(at).await? {
            caught_up(&self.cacher, revision).await.map_err(cache_error)?;
        }
        self.cacher.get(&self.def.key(namespace, name)).map_err(cache_error)
    }

    /// The objects `selection` selects at `at`, one `page`.
    pub(crate) async fn list(
        &self,
        selection: &Selection,
        at: ReadAt,
        page: &Page,
    ) -> Result<Listed, StorageError> {
        let cache_at = match (at, self.reach(at).await?) {
            (ReadAt::Exact(revision), _) => At::Exact(revision),
            (_, Some(revision)) => At::AtLeast(revision),
            (_, None) => At::Latest,
        };
        let mut options = selection.list_options().at(cache_at);
        if let Some(after) = &page.after {
            options = options.after(after.clone());
        }
        if let Some(limit) = page.limit {
            options = options.limit(limit);
        }
        match self.cacher.list_async(options).await {
            Ok(list) => Ok(Listed { items: list.items, revision: list.revision }),
            Err(ListError::Expired { requested, .. }) => {
                self.list_from_history(selection, requested, page).await
            }
            Err(error) => Err(cache_error(error)),
        }
    }

    /// What `selection` selects of the storage's state at `revision` (older than the
    /// cacher's window), with the cacher's keys, in key order.
    async fn history(
        &self,
        selection: &Selection,
        revision: u64,
    ) -> Result<Vec<(Arc<str>, Arc<Object>)>, StorageError> {
        let state = self.storage.state_at(revision).await?;
        let keyed = state
            .into_iter()
            .map(|object| (Arc::from(self.def.key(object.namespace(), object.name())), Arc::new(object)));
        Ok(keyed.filter(|(key, object)| selection.matches(key, object)).collect())
    }

    /// An exact list older than the cacher's window, from the storage's history.
    async fn list_from_history(
        &self,
        selection: &Selection,
        revision: u64,
        page: &Page,
    ) -> Result<Listed, StorageError> {
        let after = |key: &Arc<str>| page.after.as_deref().is_none_or(|after| **key > *after);
        let history = self.history(selection, revision).await?;
        let items = history
            .into_iter()
            .filter(|(key, _)| after(key))
            .take(page.limit.unwrap_or(usize::MAX))
            .collect();
        Ok(Listed { items, revision })
    }

    /// A watch of what `selection` selects from `start`.
    pub(crate) async fn watch(
        &self,
        selection: &Selection,
        start: WatchStart,
        bookmarks: bool,
    ) -> Result<Watched, StorageError> {
        let options = selection.watch_options().bookmarks(bookmarks);
        let cache_start = match start {
            WatchStart::Snapshot { consistent } => {
                if consistent {
                    let revision = self.storage.sync().await?;
                    caught_up(&self.cacher, revision).await.map_err(cache_error)?;
                }
                Start::Snapshot
            }
            WatchStart::After(revision) => Start::Revision(revision),
        };
        match self.cacher.watch(options.clone().start(cache_start)) {
            Ok(watch) => Ok(Watched { prelude: Vec::new(), watch }),
            Err(WatchError::Expired { requested, oldest }) => {
                self.watch_from_history(selection, (requested, oldest), options).await
            }
            Err(error) => Err(watch_error(error)),
        }
    }

    /// A watch from before the cacher's window: the storage's exact history from
    /// `requested` to the window's `oldest` revision, then the cacher's watch from there.
    /// Each change is its own event at its own revision, so a client may resume from
    /// any of them.
    async fn watch_from_history(
        &self,
        selection: &Selection,
        (requested, oldest): (u64, u64),
        options: watchcache::WatchOptions<Object>,
    ) -> Result<Watched, StorageError> {
        let changes = self.storage.changes(requested, oldest).await?;
        let selects = |side: &Option<(String, Object)>| {
            side.as_ref().is_some_and(|(key, object)| selection.matches(key, object))
        };
        // What the watch sees of each change: it may enter or leave the selection.
        let prelude = changes
            .into_iter()
            .filter_map(|change| match (selects(&change.before), selects(&change.after), change) {
                (false, true, Changed { after: Some((_, after)), .. }) => {
                    Some(Prelude::Added(Arc::new(after)))
                }
                (true, true, Changed { after: Some((_, after)), .. }) => {
                    Some(Prelude::Modified(Arc::new(after)))
                }
                (true, false, Changed { before: Some((_, before)), revision, .. }) => {
                    Some(Prelude::Deleted(Arc::new(before), revision))
                }
                _ => None,
            })
            .collect();
        // The window may have moved on meanwhile: then the client relists (410).
        let watch = self.cacher.watch(options.start(Start::Revision(oldest))).map_err(watch_error)?;
        Ok(Watched { prelude, watch })
    }

    /// The object `target` names in a consistent read, and the revision read at: what a
    /// dry run checks its write against.
    async fn current(&self, target: &Target<'_>) -> Result<(Option<Arc<Object>>, u64), StorageError> {
        self.get(target.namespace, target.name, ReadAt::Consistent).await
    }

    /// Creates `object`; with `dry_run`, only answers as a create would (the object, at
    /// the revision it was checked at), storing nothing.
    pub(crate) async fn create(
        &self,
        target: Target<'_>,
        object: Object,
        dry_run: bool,
    ) -> Result<Stored, StorageError> {
        if !dry_run {
            return self.storage.create(target, object).await;
        }
        match self.current(&target).await? {
            (Some(_), _) => Err(StorageError::already_exists(&target)),
            (None, revision) => Ok(Stored { object: Arc::new(object), revision }),
        }
    }

    /// Replaces the object with `next(current)`; with `dry_run`, answers with what it
    /// would store, at the current object's revision, storing nothing.
    pub(crate) async fn update(
        &self,
        target: Target<'_>,
        precondition: Option<u64>,
        next: &UpdateFn<'_>,
        dry_run: bool,
    ) -> Result<Stored, StorageError> {
        if !dry_run {
            return self.storage.update(target, precondition, next).await;
        }
        let Some(current) = self.current(&target).await?.0 else {
            return Err(StorageError::not_found(&target));
        };
        if precondition.is_some_and(|revision| current.revision() != revision) {
            return Err(StorageError::conflict(&target));
        }
        let object = Arc::new(next(&current).map_err(StorageError::Refused)?);
        Ok(Stored { object, revision: current.revision() })
    }

    /// Deletes the object; with `dry_run`, answers with the object a delete would remove,
    /// deleting nothing.
    pub(crate) async fn delete(
        &self,
        target: Target<'_>,
        preconditions: &Preconditions,
        dry_run: bool,
    ) -> Result<Stored, StorageError> {
        if !dry_run {
            return self.storage.delete(target, preconditions).await;
        }
        match self.current(&target).await? {
            (None, _) => Err(StorageError::not_found(&target)),
            (Some(current), _) if !preconditions.hold_for(&current) => Err(StorageError::conflict(&target)),
            (Some(current), revision) => Ok(Stored { object: current, revision }),
        }
    }

    /// Stops the storage's background work and the cacher.
    pub(crate) fn shutdown(&self) {
        self.storage.shutdown();
        self.cacher.shutdown();
    }
}

fn watch_error(error: WatchError) -> StorageError {
    match error {
        WatchError::NotReady { retry_after } => StorageError::Cache(ListError::NotReady { retry_after }),
        WatchError::InvalidOptions { reason } => StorageError::Cache(ListError::InvalidOptions { reason }),
        WatchError::Expired { requested, oldest } => StorageError::Compacted { requested, oldest },
        other => StorageError::Unavailable(other.to_string()),
    }
}
