//! The current state: every live key and its object, at one revision.
//!
//! The dispatcher mutates its own persistent map (`imbl`'s ordered map, a B-tree with
//! structural sharing) and publishes an O(1) clone of it once per batch of changes.
//! Readers load the latest published snapshot without a lock and without ever making the
//! dispatcher wait; a snapshot is one consistent revision, never a mix. Mutating a map
//! whose nodes a snapshot still shares copies only the touched path, once per batch.

use crate::sync::{Arc, ArcCell};
use std::ops::Bound;

type Object<T> = std::sync::Arc<T>;
type Key = std::sync::Arc<str>;

/// Every live key's object, in key order. Nodes are shared through `triomphe::Arc`: the
/// dispatcher mutates a node in place when no snapshot shares it, and `triomphe` tells
/// that with a plain load of the count, where `std::sync::Arc::make_mut` takes a locked
/// compare-exchange on every node of every insert's path.
pub(crate) type Objects<T> = imbl::GenericOrdMap<Key, Object<T>, NodePointer>;

#[cfg(not(tsan))]
type NodePointer = archery::ArcTK;
/// Under ThreadSanitizer (`--cfg tsan`, as `.ci/run` builds it), std's `Arc`. The thread
/// that drops a node's last reference acquires the other holders' releases with a fence,
/// in `triomphe` as in std; ThreadSanitizer does not model fences, so it reports that
/// free as racing the node's writes. std's `Arc` acquires with a load instead when built
/// for ThreadSanitizer, for that reason; `triomphe` does not.
#[cfg(tsan)]
type NodePointer = archery::ArcK;

/// The state at one revision.
pub(crate) struct Snapshot<T> {
    pub(crate) objects: Objects<T>,
    pub(crate) revision: u64,
}

impl<T> Snapshot<T> {
    /// The objects whose keys start with `prefix`, in key order, from after `after`.
    pub(crate) fn range<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a Key, &'a Object<T>)> + 'a {
        let lower = match after {
            Some(key) if key >= prefix => Bound::Excluded(key),
            _ => Bound::Included(prefix),
        };
        self.objects
            .range::<_, str>((lower, Bound::Unbounded))
            .take_while(move |(key, _)| key.starts_with(prefix))
    }
}

/// The reading side, shared by lists, gets and snapshot watches.
pub(crate) struct Store<T> {
    published: ArcCell<Snapshot<T>>,
}

impl<T> Store<T> {
    pub(crate) fn snapshot(&self) -> Arc<Snapshot<T>> {
        self.published.load()
    }
}

impl<T> std::fmt::Debug for Store<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("revision", &self.snapshot().revision).finish()
    }
}

/// The writing side: owned by the dispatcher alone (not `Clone`).
pub(crate) struct StoreWriter<T> {
    store: Arc<Store<T>>,
    objects: Objects<T>,
    revision: u64,
    /// Whether `objects` or `revision` changed since the last publication.
    changed: bool,
}

impl<T> StoreWriter<T> {
    pub(crate) fn new() -> Self {
        let store = Arc::new(Store {
            published: ArcCell::new(Arc::new(Snapshot { objects: Objects::new(), revision: 0 })),
        });
        Self { store, objects: Objects::new(), revision: 0, changed: false }
    }

    pub(crate) fn reader(&self) -> Arc<Store<T>> {
        self.store.clone()
    }

    pub(crate) fn len(&self) -> usize {
        self.objects.len()
    }

    /// The current (possibly unpublished) object at `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&Object<T>> {
        self.objects.get(key)
    }

    /// Every current object, in key order.
    pub(crate) fn objects(&self) -> &Objects<T> {
        &self.objects
    }

    /// Sets `key` to `object`; returns the previous object.
    pub(crate) fn put(&mut self, key: Key, object: Object<T>) -> Option<Object<T>> {
        self.changed = true;
        self.objects.insert(key, object)
    }

    /// Removes `key`; returns the removed object, or `None` (and changes nothing) when
    /// it was missing.
    pub(crate) fn remove(&mut self, key: &str) -> Option<Object<T>> {
        let removed = self.objects.remove(key);
        self.changed |= removed.is_some();
        removed
    }

    /// Replaces every object at once (a relist).
    pub(crate) fn replace(&mut self, objects: Objects<T>) {
        self.changed = true;
        self.objects = objects;
    }

    pub(crate) fn set_revision(&mut self, revision: u64) {
        self.changed |= revision != self.revision;
        self.revision = revision;
    }

    /// Publishes the current state if it changed since the last publication.
    pub(crate) fn publish(&mut self) {
        if std::mem::take(&mut self.changed) {
            let snapshot = Snapshot { objects: self.objects.clone(), revision: self.revision };
            self.store.published.store(Arc::new(snapshot));
        }
    }
}
