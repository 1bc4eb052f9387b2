//! Events as watchers see them, and the record the dispatcher keeps for each change.
//!
//! An owned [`Event`] carries an [`Entry`]: the key, the object and the revision. An entry
//! read from the window does not clone the key's or the object's `Arc`: it shares its
//! watch's lease on the window chunk that holds the record (see `window.rs`), so taking
//! and dropping an owned event touches a count only that watch's events share, never one
//! that every watcher of the object contends on.

use crate::filter::TriggerTags;
use crate::window::Lease;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// One item of a watch stream.
///
/// Objects and keys are shared (`Arc`): fan-out to many watchers never clones a `T`.
/// Match on the kind and read the rest from the [`Entry`]:
///
/// ```
/// use watchcache::Event;
///
/// fn describe(event: &Event<String>) -> String {
///     match event {
///         Event::Added(entry) | Event::Modified(entry) => format!("{} = {}", entry.key(), entry.object()),
///         Event::Deleted(entry) => format!("{} deleted at {}", entry.key(), entry.revision()),
///         Event::Bookmark { revision, .. } => format!("complete up to {revision}"),
///     }
/// }
/// ```
#[derive(Debug, PartialEq)]
// A tag a word wide, where the compiler's choice is a byte. An event reaches its consumer
// moved out through `Result`, `Option` and `Poll`, and each move copies what follows the
// tag. After a byte-wide tag that is bytes 1 to 39, copied in overlapping unaligned
// 16-byte moves; each layer's loads then straddle two of the previous layer's stores,
// which the processor cannot forward to them, so every layer waits for its stores to
// reach the cache. After a word the copies start on word boundaries. The layers still
// add no tag of their own: they use the tag's spare values. (PERF.md run 16: the
// `Stream` 1.4x to 1.9x at 10 to 1,000 watchers.)
#[repr(u64)]
pub enum Event<T> {
    /// The object started matching the watch (a new key, or an object that moved into
    /// the watch's filter); the entry holds the object after the change.
    Added(Entry<T>),
    /// The object matched before and after the change; the entry holds the object after
    /// it.
    Modified(Entry<T>),
    /// The object stopped matching the watch: it was deleted, or moved out of the filter.
    /// The entry holds the object's last state that matched, at the change's revision.
    Deleted(Entry<T>),
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
            Self::Added(entry) | Self::Modified(entry) | Self::Deleted(entry) => entry.revision(),
            Self::Bookmark { revision, .. } => *revision,
        }
    }

    /// The entry (key, object, revision); `None` for a bookmark.
    pub fn entry(&self) -> Option<&Entry<T>> {
        match self {
            Self::Added(entry) | Self::Modified(entry) | Self::Deleted(entry) => Some(entry),
            Self::Bookmark { .. } => None,
        }
    }

    /// The entry, by value; `None` for a bookmark.
    pub fn into_entry(self) -> Option<Entry<T>> {
        match self {
            Self::Added(entry) | Self::Modified(entry) | Self::Deleted(entry) => Some(entry),
            Self::Bookmark { .. } => None,
        }
    }

    /// The object's key; `None` for a bookmark.
    pub fn key(&self) -> Option<&Arc<str>> {
        self.entry().map(Entry::key)
    }

    /// The object; `None` for a bookmark.
    pub fn object(&self) -> Option<&Arc<T>> {
        self.entry().map(Entry::object)
    }

    /// The event, borrowed.
    pub fn as_ref(&self) -> EventRef<'_, T> {
        match self {
            Self::Added(entry) => {
                let (key, object, revision) = entry.parts();
                EventRef::Added { key, object, revision }
            }
            Self::Modified(entry) => {
                let (key, object, revision) = entry.parts();
                EventRef::Modified { key, object, revision }
            }
            Self::Deleted(entry) => {
                let (key, object, revision) = entry.parts();
                EventRef::Deleted { key, object, revision }
            }
            Self::Bookmark { revision, initial_events_end } => {
                EventRef::Bookmark { revision: *revision, initial_events_end: *initial_events_end }
            }
        }
    }
}

// By hand: cloning an event clones `Arc`s or a lease, never a `T`, so `T: Clone` is not
// needed (a derive would ask for it).
impl<T> Clone for Event<T> {
    fn clone(&self) -> Self {
        match self {
            Self::Added(entry) => Self::Added(entry.clone()),
            Self::Modified(entry) => Self::Modified(entry.clone()),
            Self::Deleted(entry) => Self::Deleted(entry.clone()),
            Self::Bookmark { revision, initial_events_end } => {
                Self::Bookmark { revision: *revision, initial_events_end: *initial_events_end }
            }
        }
    }
}

/// What an event says of one key: the key, an object and the revision of the change.
///
/// An entry is cheap to move, clone and drop. One a watch read from the cacher's window
/// keeps the record it was read from alive (through the watch's hold on the record's
/// chunk of the window) rather than holding the key's and the object's `Arc`s itself;
/// [`Entry::key`] and [`Entry::object`] lend them, and cloning what they lend gives an
/// `Arc` of one's own.
///
/// So an entry kept long after the window moved on keeps its whole chunk of the window
/// alive (up to 256 records, with their keys and objects): to keep one object for long,
/// keep a clone of its `Arc` rather than the entry.
///
/// Dropping such entries is cheap as well. While their watch still reads the chunk, a
/// thread counts its drops of the chunk's entries privately, and applies them in one
/// step when it drops an entry of another chunk, when a watch it polls moves on to
/// another chunk or ends, or when the thread exits. A chunk can therefore outlive its
/// last entry for a while: when its watch moved on from it on another thread after this
/// thread's last drop, until this thread's next such step (at most one chunk per thread).
pub struct Entry<T>(Held<T>);

/// How an entry holds its key and object.
enum Held<T> {
    /// Its own references (a snapshot's objects, a pushed event, a borrowed event made
    /// owned, or an entry built by [`Entry::new`]).
    Shared { key: Arc<str>, object: Arc<T>, revision: u64 },
    /// The record at `position` of the window, kept alive by `lease`; `side` says which of
    /// its objects the entry carries.
    Leased { lease: Lease<T>, position: u64, side: Side },
}

/// Which object of a record an entry carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The object after the change (`Added`, `Modified`).
    New,
    /// The object before it (`Deleted`).
    Prev,
}

impl<T> Entry<T> {
    /// An entry of `key` and `object` at `revision`.
    pub fn new(key: Arc<str>, object: Arc<T>, revision: u64) -> Self {
        Self(Held::Shared { key, object, revision })
    }

    /// The `side` object of the record at `position`, which `lease` holds.
    pub(crate) fn leased(lease: Lease<T>, position: u64, side: Side) -> Self {
        debug_assert!(match side {
            Side::New => lease.record(position).object.is_some(),
            Side::Prev => lease.record(position).prev.is_some(),
        });
        Self(Held::Leased { lease, position, side })
    }

    /// The object's key.
    pub fn key(&self) -> &Arc<str> {
        self.parts().0
    }

    /// The object: after the change for `Added` and `Modified`, its last matching state
    /// for `Deleted`.
    pub fn object(&self) -> &Arc<T> {
        self.parts().1
    }

    /// The change's revision.
    pub fn revision(&self) -> u64 {
        self.parts().2
    }

    /// The key, the object and the revision, with a leased record looked up once.
    fn parts(&self) -> (&Arc<str>, &Arc<T>, u64) {
        match &self.0 {
            Held::Shared { key, object, revision } => (key, object, *revision),
            Held::Leased { lease, position, side } => {
                let record = lease.record(*position);
                let object = match side {
                    Side::New => &record.object,
                    Side::Prev => &record.prev,
                };
                let object = object.as_ref().expect("a leased entry's side holds an object");
                (&record.key, object, record.revision)
            }
        }
    }
}

impl<T> Clone for Entry<T> {
    fn clone(&self) -> Self {
        Self(match &self.0 {
            Held::Shared { key, object, revision } => {
                Held::Shared { key: key.clone(), object: object.clone(), revision: *revision }
            }
            Held::Leased { lease, position, side } => {
                Held::Leased { lease: lease.clone(), position: *position, side: *side }
            }
        })
    }
}

impl<T: PartialEq> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl<T: Eq> Eq for Entry<T> {}

impl<T: Eq> Eq for Event<T> {}

impl<T: fmt::Debug> fmt::Debug for Entry<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (key, object, revision) = self.parts();
        f.debug_struct("Entry")
            .field("key", key)
            .field("object", object)
            .field("revision", &revision)
            .finish()
    }
}

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
                Event::Added(Entry::new(key.clone(), object.clone(), revision))
            }
            Self::Modified { key, object, revision } => {
                Event::Modified(Entry::new(key.clone(), object.clone(), revision))
            }
            Self::Deleted { key, object, revision } => {
                Event::Deleted(Entry::new(key.clone(), object.clone(), revision))
            }
            Self::Bookmark { revision, initial_events_end } => {
                Event::Bookmark { revision, initial_events_end }
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
    /// The trigger values' tags, set by the dispatcher before it appends the record.
    pub(crate) triggers: TriggerTags,
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
        let triggers = TriggerTags::UNKNOWN;
        Self { revision, key, object, prev, since, ends_revision, relisted, triggers, applied_at_nanos }
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
    // Inlined (with `Filter::event`) so the replay loop builds the event where it passes
    // it on. Returned through memory, the event's fields were stored one by one and then
    // copied 16 bytes at a time, and each such load waited for the stores it spans.
    #[inline]
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
    use super::{Event, Record};
    use crate::WatchError;
    use std::mem::size_of;
    use std::task::Poll;

    #[test]
    fn a_record_stays_at_64_bytes() {
        // The window holds up to 102,400 of them per cacher by default.
        assert_eq!(size_of::<Record<u64>>(), 64);
    }

    #[test]
    fn the_layers_a_stream_item_moves_through_add_no_tag() {
        // The word-wide tag keeps spare values for them, so an item stays an event's size.
        type Item = Result<Event<u64>, WatchError>;
        assert_eq!(size_of::<Item>(), size_of::<Event<u64>>());
        assert_eq!(size_of::<Poll<Option<Item>>>(), size_of::<Event<u64>>());
    }
}
