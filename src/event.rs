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

/// An event borrowed from the cacher, as [`Watch::visit`](crate::Watch::visit) and its
/// siblings pass it: the same kinds and fields as [`Event`], by reference, so reading
/// it touches no reference count (the cost that dominates fan-out to many watchers).
/// [`EventRef::to_owned`] (or cloning a field's `Arc`) keeps what outlives the visit.
#[derive(Debug)]
pub enum EventRef<'a, T> {
    /// See [`Event::Added`].
    Added {
        /// The object's key.
        key: &'a Arc<str>,
        /// The object after the change.
        object: &'a Arc<T>,
        /// The change's revision.
        revision: u64,
    },
    /// See [`Event::Modified`].
    Modified {
        /// The object's key.
        key: &'a Arc<str>,
        /// The object after the change.
        object: &'a Arc<T>,
        /// The change's revision.
        revision: u64,
    },
    /// See [`Event::Deleted`].
    Deleted {
        /// The object's key.
        key: &'a Arc<str>,
        /// The object's last state that matched.
        object: &'a Arc<T>,
        /// The change's revision.
        revision: u64,
    },
    /// See [`Event::Bookmark`].
    Bookmark {
        /// The revision the watcher is complete up to.
        revision: u64,
        /// Marks the end of a `Start::Snapshot` watch's initial events.
        initial_events_end: bool,
    },
}

impl<T> Clone for EventRef<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for EventRef<'_, T> {}

impl<'a, T> EventRef<'a, T> {
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
    pub fn key(&self) -> Option<&'a Arc<str>> {
        match *self {
            Self::Added { key, .. } | Self::Modified { key, .. } | Self::Deleted { key, .. } => Some(key),
            Self::Bookmark { .. } => None,
        }
    }

    /// The object; `None` for a bookmark.
    pub fn object(&self) -> Option<&'a Arc<T>> {
        match *self {
            Self::Added { object, .. } | Self::Modified { object, .. } | Self::Deleted { object, .. } => {
                Some(object)
            }
            Self::Bookmark { .. } => None,
        }
    }

    /// The owned event: clones the key's and the object's `Arc`, never a `T`.
    pub fn to_owned(self) -> Event<T> {
        match self {
            Self::Added { key, object, revision } => {
                Event::Added { key: key.clone(), object: object.clone(), revision }
            }
            Self::Modified { key, object, revision } => {
                Event::Modified { key: key.clone(), object: object.clone(), revision }
            }
            Self::Deleted { key, object, revision } => {
                Event::Deleted { key: key.clone(), object: object.clone(), revision }
            }
            Self::Bookmark { revision, initial_events_end } => {
                Event::Bookmark { revision, initial_events_end }
            }
        }
    }
}

impl<T> Event<T> {
    /// The event, borrowed.
    pub fn as_ref(&self) -> EventRef<'_, T> {
        match self {
            Self::Added { key, object, revision } => EventRef::Added { key, object, revision: *revision },
            Self::Modified { key, object, revision } => {
                EventRef::Modified { key, object, revision: *revision }
            }
            Self::Deleted { key, object, revision } => EventRef::Deleted { key, object, revision: *revision },
            Self::Bookmark { revision, initial_events_end } => {
                EventRef::Bookmark { revision: *revision, initial_events_end: *initial_events_end }
            }
        }
    }
}

/// One applied change, as the window keeps it: shared by every watcher that reads it.
///
/// A record has a revision (the cacher's, or the upstream's) and, in the window, a dense
/// position; several records may share a revision (an upstream transaction, or a relist's
/// difference), and upstream revisions may skip. Only `window.rs` maps one to the other.
#[derive(Debug)]
pub(crate) struct Record<T> {
    pub(crate) revision: u64,
    pub(crate) key: Arc<str>,
    /// The object after the change; `None` for a delete.
    pub(crate) object: Option<Arc<T>>,
    /// The object before the change (the key's object at `since`); `None` when the key
    /// was new.
    pub(crate) prev: Option<Arc<T>>,
    /// The cacher's revision before this record's revision began.
    pub(crate) since: u64,
    /// Whether this is the last record of its revision: a reader that has read it has
    /// everything up to `revision`.
    pub(crate) ends_revision: bool,
    /// Whether this record is part of a relist's difference (which never ends a watch for
    /// being slow).
    pub(crate) relisted: bool,
    /// When the dispatcher applied it, in nanoseconds on the cacher's clock (sizes the
    /// window); a `u64` rather than a `Duration` keeps a record at 64 bytes.
    applied_at_nanos: u64,
}

/// How a record came to be: an ordinary change, or part of a relist's difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Change,
    Relist,
}

impl<T> Record<T> {
    /// A record at `revision`, applied at clock time `applied_at`; the cacher's revision
    /// before it was `since`.
    pub(crate) fn new(
        (revision, since): (u64, u64),
        key: Arc<str>,
        (object, prev): (Option<Arc<T>>, Option<Arc<T>>),
        (origin, ends_revision): (Origin, bool),
        applied_at: Duration,
    ) -> Self {
        let applied_at_nanos = u64::try_from(applied_at.as_nanos()).unwrap_or(u64::MAX);
        let relisted = origin == Origin::Relist;
        Self { revision, key, object, prev, since, ends_revision, relisted, applied_at_nanos }
    }

    /// The revision a reader is complete up to once it has read this record: its own if
    /// it ends its revision, else the one before its revision began.
    pub(crate) fn complete(&self) -> u64 {
        if self.ends_revision {
            self.revision
        } else {
            self.since
        }
    }

    /// When the dispatcher applied it, on the cacher's clock.
    pub(crate) fn applied_at(&self) -> Duration {
        Duration::from_nanos(self.applied_at_nanos)
    }

    /// The event a watcher sees, given which of the new and previous objects match its
    /// filter: the new only → `Added`; both → `Modified`; the previous only → `Deleted`
    /// (with the previous object); neither → nothing.
    pub(crate) fn event_for(&self, matches: impl Fn(&T) -> bool) -> Option<EventRef<'_, T>> {
        let new_matches = self.object.as_deref().is_some_and(&matches);
        let prev_matches = self.prev.as_deref().is_some_and(&matches);
        self.transition(new_matches, prev_matches)
    }

    /// [`Self::event_for`], given whether the new and the previous object match.
    pub(crate) fn transition(&self, new_matches: bool, prev_matches: bool) -> Option<EventRef<'_, T>> {
        let new = self.object.as_ref().filter(|_| new_matches);
        let prev = self.prev.as_ref().filter(|_| prev_matches);
        let (key, revision) = (&self.key, self.revision);
        match (new, prev) {
            (Some(object), None) => Some(EventRef::Added { key, object, revision }),
            (Some(object), Some(_)) => Some(EventRef::Modified { key, object, revision }),
            (None, Some(object)) => Some(EventRef::Deleted { key, object, revision }),
            (None, None) => None,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Record;

    #[test]
    fn a_record_stays_at_64_bytes() {
        // The window holds up to 102,400 of them per cacher by default.
        assert_eq!(std::mem::size_of::<Record<u64>>(), 64);
    }
}
