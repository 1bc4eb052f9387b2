//! Events as watchers see them, and the record the dispatcher keeps for each change.

use std::sync::Arc;
use std::time::Duration;

/// One item of a watch stream.
///
/// Objects and keys are shared (`Arc`): fan-out to many watchers never clones a `T`.
#[derive(Debug)]
pub enum Event<T> {
    /// The object started matching the watch (a new key, or an object that moved into
    /// the watch's filter).
    Added {
        /// The object's key.
        key: Arc<str>,
        /// The object after the change.
        object: Arc<T>,
        /// The change's revision.
        revision: u64,
    },
    /// The object matched before and after the change.
    Modified {
        /// The object's key.
        key: Arc<str>,
        /// The object after the change.
        object: Arc<T>,
        /// The change's revision.
        revision: u64,
    },
    /// The object stopped matching the watch: it was deleted, or moved out of the filter.
    Deleted {
        /// The object's key.
        key: Arc<str>,
        /// The object's last state that matched.
        object: Arc<T>,
        /// The change's revision.
        revision: u64,
    },
    /// No object: the watch has seen everything up to `revision` and may resume from it.
    Bookmark {
        /// The revision the watcher is complete up to.
        revision: u64,
        /// Marks the end of a `Start::Snapshot` watch's initial events.
        initial_events_end: bool,
    },
}

impl<T> Event<T> {
    /// The revision this event reflects.
    pub fn revision(&self) -> u64 {
        match self {
            Self::Added { revision, .. }
            | Self::Modified { revision, .. }
            | Self::Deleted { revision, .. }
            | Self::Bookmark { revision, .. } => *revision,
        }
    }

    /// The object's key; `None` for a bookmark.
    pub fn key(&self) -> Option<&Arc<str>> {
        match self {
            Self::Added { key, .. } | Self::Modified { key, .. } | Self::Deleted { key, .. } => Some(key),
            Self::Bookmark { .. } => None,
        }
    }

    /// The object; `None` for a bookmark.
    pub fn object(&self) -> Option<&Arc<T>> {
        match self {
            Self::Added { object, .. } | Self::Modified { object, .. } | Self::Deleted { object, .. } => {
                Some(object)
            }
            Self::Bookmark { .. } => None,
        }
    }
}

impl<T> Clone for Event<T> {
    fn clone(&self) -> Self {
        match self {
            Self::Added { key, object, revision } => {
                Self::Added { key: key.clone(), object: object.clone(), revision: *revision }
            }
            Self::Modified { key, object, revision } => {
                Self::Modified { key: key.clone(), object: object.clone(), revision: *revision }
            }
            Self::Deleted { key, object, revision } => {
                Self::Deleted { key: key.clone(), object: object.clone(), revision: *revision }
            }
            Self::Bookmark { revision, initial_events_end } => {
                Self::Bookmark { revision: *revision, initial_events_end: *initial_events_end }
            }
        }
    }
}

impl<T: PartialEq> PartialEq for Event<T> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Self::Bookmark { revision: a, initial_events_end: x },
                Self::Bookmark { revision: b, initial_events_end: y },
            ) => a == b && x == y,
            (Self::Added { .. }, Self::Added { .. })
            | (Self::Modified { .. }, Self::Modified { .. })
            | (Self::Deleted { .. }, Self::Deleted { .. }) => {
                self.revision() == other.revision()
                    && self.key() == other.key()
                    && self.object() == other.object()
            }
            _ => false,
        }
    }
}

impl<T: Eq> Eq for Event<T> {}

/// One applied change, as the window keeps it: shared by every watcher that reads it.
#[derive(Debug)]
pub(crate) struct Record<T> {
    pub(crate) revision: u64,
    pub(crate) key: Arc<str>,
    /// The object after the change; `None` for a delete.
    pub(crate) object: Option<Arc<T>>,
    /// The object before the change; `None` when the key was new.
    pub(crate) prev: Option<Arc<T>>,
    /// When the dispatcher applied it, on the cacher's clock (sizes the window).
    pub(crate) applied_at: Duration,
}

impl<T> Record<T> {
    /// The event a watcher sees, given which of the new and previous objects match its
    /// filter: the new only → `Added`; both → `Modified`; the previous only → `Deleted`
    /// (with the previous object); neither → nothing.
    pub(crate) fn event_for(&self, matches: impl Fn(&T) -> bool) -> Option<Event<T>> {
        let new = self.object.as_ref().filter(|object| matches(object));
        let prev = self.prev.as_ref().filter(|object| matches(object));
        let (key, revision) = (self.key.clone(), self.revision);
        match (new, prev) {
            (Some(object), None) => Some(Event::Added { key, object: object.clone(), revision }),
            (Some(object), Some(_)) => Some(Event::Modified { key, object: object.clone(), revision }),
            (None, Some(object)) => Some(Event::Deleted { key, object: object.clone(), revision }),
            (None, None) => None,
        }
    }
}
