//! The state a watch shares with the dispatcher: its filter, its pushed buffer, and the
//! hand-off between live dispatch and reading the window.
//!
//! An *indexed* watcher (one that asked for a trigger value) gets its events pushed by
//! the dispatcher into a bounded buffer. Every other watcher *pulls*: it reads the window
//! through its own cursor and applies its filter on its own thread, so the dispatcher's
//! work per event does not grow with them (DESIGN.md §7).
//!
//! A pushed watcher moves through [`Phase`]s:
//!
//! ```text
//!  Joining ──(dispatcher picks the join revision N)──► Live ──(buffer full)──► Parked(r)
//!     ▲                                                  │                        │
//!     └──────────(consumer caught up from the window)────┼────────────────────────┘
//!                                                        └─(buffer full, budget spent)─► Terminated(r)
//! ```
//!
//! The consumer replays `(position, N]` from the window itself, then reads its buffer,
//! skipping anything at or below the revision it has already yielded; so joining never
//! holds up the dispatcher, and no event is seen twice or missed.

use crate::event::Event;
use crate::notify::Parker;
use crate::options::Filter;
use crate::ring::Ring;
use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use crate::sync::Arc;

/// Where a pushed watcher stands with the dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for the dispatcher to add it to live dispatch.
    Joining,
    /// In live dispatch: every matching event after [`WatcherShared::joined_at`] is pushed.
    Live,
    /// Dropped from live dispatch because its buffer was full; every matching event up to
    /// `r` was pushed. The consumer catches up from the window and rejoins.
    Parked(u64),
    /// Ended because its buffer stayed full; every matching event up to `r` was pushed.
    Terminated(u64),
}

/// A [`Phase`] packed into one atomic: the tag in the low two bits, the revision above.
///
/// Who writes: the dispatcher moves Joining → Live, Live → Parked and Live → Terminated;
/// the consumer moves Parked → Joining. Each side writes only from phases it owns, so a
/// plain `Release` store suffices for the dispatcher and a CAS for the consumer (racing
/// only with nothing: the dispatcher never leaves Parked). `Release` on every write and
/// `Acquire` on every read make the pushes (and `joined_at`) that precede a phase change
/// visible to the consumer that observes it.
#[derive(Debug)]
pub(crate) struct PhaseCell(AtomicU64);

const JOINING: u64 = 0;
const LIVE: u64 = 1;
const PARKED: u64 = 2;
const TERMINATED: u64 = 3;

impl PhaseCell {
    fn new() -> Self {
        Self(AtomicU64::new(JOINING))
    }

    fn pack(phase: Phase) -> u64 {
        match phase {
            Phase::Joining => JOINING,
            Phase::Live => LIVE,
            Phase::Parked(revision) => revision << 2 | PARKED,
            Phase::Terminated(revision) => revision << 2 | TERMINATED,
        }
    }

    pub(crate) fn load(&self) -> Phase {
        let raw = self.0.load(Ordering::Acquire);
        match raw & 3 {
            JOINING => Phase::Joining,
            LIVE => Phase::Live,
            PARKED => Phase::Parked(raw >> 2),
            _ => Phase::Terminated(raw >> 2),
        }
    }

    /// The dispatcher's transitions.
    pub(crate) fn store(&self, phase: Phase) {
        self.0.store(Self::pack(phase), Ordering::Release);
    }

    /// The consumer's transition `from` → `to`; fails if the phase moved meanwhile.
    pub(crate) fn transition(&self, from: Phase, to: Phase) -> bool {
        self.0.compare_exchange(Self::pack(from), Self::pack(to), Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

/// Everything a watch and the dispatcher share about one watcher.
pub(crate) struct WatcherShared<T> {
    pub(crate) filter: Filter<T>,
    /// Events pushed by the dispatcher, popped by the watch; `None` for pulling watchers.
    pub(crate) buffer: Option<Ring<Event<T>>>,
    /// The most events the watcher may fall behind (its buffer size, also for pullers).
    pub(crate) buffer_len: usize,
    pub(crate) phase: PhaseCell,
    /// The revision the dispatcher joined this watcher at: events after it are pushed.
    /// Written by the dispatcher before it stores `Live` (which publishes it).
    pub(crate) joined_at: AtomicU64,
    /// Wakes the consumer: pushes, phase changes, bookmarks, deadlines.
    pub(crate) consumer: Arc<Parker>,
    /// Wakes the dispatcher while it waits for room in `buffer` (Terminate policy).
    pub(crate) room: Parker,
    /// A bookmark is due at this revision, plus one (0: none). Set by the dispatcher after
    /// it pushed everything up to that revision (`Release`); cleared by the consumer that
    /// emits it.
    bookmark_due: AtomicU64,
    /// Whether the consumer asked for periodic bookmarks.
    pub(crate) bookmarks: bool,
    /// A watch from a future revision: the revision it waits for (0: none).
    pub(crate) awaits: u64,
    /// The clock time of the `watch` call. Timers (the first bookmark, the end of the
    /// wait for `awaits`) count from it, not from when the dispatcher first sees the
    /// watcher.
    pub(crate) started_at: std::time::Duration,
    /// Set by the dispatcher when the wait for `awaits` timed out: the cacher's revision
    /// then, plus one (0: not timed out).
    pub(crate) too_new: AtomicU64,
    /// Whether the watcher is on the dispatcher's list of watchers to wake at the end of
    /// the current batch. Read and written by the dispatcher only (`Relaxed`): it keeps
    /// the list to one entry per watcher, with no reference-count traffic per delivery.
    pub(crate) wake_listed: AtomicBool,
    /// Set by the consumer when the watch is dropped; the dispatcher stops offering and
    /// removes the watcher between events (a deferred stop).
    pub(crate) dropped: AtomicBool,
}

impl<T> WatcherShared<T> {
    pub(crate) fn new(
        filter: Filter<T>,
        pushed: bool,
        buffer_len: usize,
        bookmarks: bool,
        (awaits, started_at): (u64, std::time::Duration),
    ) -> Self {
        Self {
            filter,
            buffer: pushed.then(|| Ring::new(buffer_len)),
            buffer_len,
            phase: PhaseCell::new(),
            joined_at: AtomicU64::new(0),
            consumer: Arc::new(Parker::new()),
            room: Parker::new(),
            bookmark_due: AtomicU64::new(0),
            bookmarks,
            awaits,
            started_at,
            too_new: AtomicU64::new(0),
            wake_listed: AtomicBool::new(false),
            dropped: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    /// The dispatcher adds the watcher to live dispatch after `revision`.
    pub(crate) fn join(&self, revision: u64) {
        self.joined_at.store(revision, Ordering::Relaxed);
        self.phase.store(Phase::Live);
        self.consumer.wake();
    }

    /// Readable after observing `Live` or a later phase through [`PhaseCell::load`].
    pub(crate) fn joined_at(&self) -> u64 {
        self.joined_at.load(Ordering::Relaxed)
    }

    /// The dispatcher marks a bookmark due at `revision`.
    pub(crate) fn offer_bookmark(&self, revision: u64) {
        self.bookmark_due.store(revision + 1, Ordering::Release);
        self.consumer.wake();
    }

    /// The revision of a due bookmark, if one is due. `Acquire`: pushes made before the
    /// bookmark was offered are visible after this.
    pub(crate) fn due_bookmark(&self) -> Option<u64> {
        self.bookmark_due.load(Ordering::Acquire).checked_sub(1)
    }

    /// Claims the bookmark due at `revision`; fails if a newer one replaced it meanwhile.
    pub(crate) fn take_bookmark(&self, revision: u64) -> bool {
        self.bookmark_due.compare_exchange(revision + 1, 0, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// The dispatcher ends the wait for a future revision at `current`.
    pub(crate) fn time_out(&self, current: u64) {
        self.too_new.store(current + 1, Ordering::Release);
        self.consumer.wake();
    }

    /// The cacher's revision when the wait for `awaits` timed out, if it did.
    pub(crate) fn timed_out_at(&self) -> Option<u64> {
        self.too_new.load(Ordering::Acquire).checked_sub(1)
    }
}

impl<T> std::fmt::Debug for WatcherShared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatcherShared")
            .field("pushed", &self.buffer.is_some())
            .field("phase", &self.phase.load())
            .field("dropped", &self.is_dropped())
            .finish_non_exhaustive()
    }
}
