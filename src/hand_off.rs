//! The watcher hand-off protocol: what a watch shares with the dispatcher (its filter,
//! its pushed buffer, its phase), the control messages it sends, and every transition.
//!
//! An *indexed* watcher (one that asked for a trigger value) gets its events pushed by
//! the dispatcher into a bounded buffer. Every other watcher *pulls*: it reads the window
//! through its own cursor and applies its filter on its own thread, so the dispatcher's
//! work per event does not grow with the number of unindexed watchers.
//!
//! A pushed watcher moves through [`Phase`]s:
//!
//! ```text
//!  Joining ──(dispatcher picks the join position N)──► Live ──(buffer full)──► Parked(p)
//!     ▲                                                  │                        │
//!     └──────────(consumer caught up from the window)────┼────────────────────────┘
//!                                                        └─(buffer full, budget spent)─► Terminated(r)
//! ```
//!
//! `N` is a window position (see `window.rs` on positions and revisions): the dispatcher
//! pushes every matching record after position `N`, each with its position. The consumer
//! replays `(position, N]` from the window itself, then reads its buffer, skipping
//! anything at or below the position it has already read; so joining never holds up the
//! dispatcher, and no event is seen twice or missed. A watch that starts after a revision
//! `r` the cacher has not reached yet is joined only once the dispatcher has applied `r`:
//! everything it is ever pushed is then an event it owes.
//!
//! A park happens between any two records (the consumer then reads on from the next
//! position in the window), so it is recorded as a position. A termination must leave a
//! revision to resume from, and the records of one revision are delivered together or
//! not at all: it is recorded as the last revision before the record that did not fit,
//! and the consumer yields only what it holds up to that revision.
//!
//! Every phase change, and the counters that follow it, happens in one method here:
//! [`WatcherShared::join`], [`WatcherShared::park`], [`WatcherShared::terminate`] and
//! [`WatcherShared::rejoin`] on the dispatcher's side, [`WatcherShared::ask_to_rejoin`]
//! on the consumer's, [`WatcherShared::stop`] when the dispatcher takes it out. The
//! consumer asks for the dispatcher's side of a transition with a [`Control`] message.

use crate::dispatch::awaiting::RevisionWait;
use crate::event::Event;
use crate::filter::Filter;
use crate::notify::Parker;
use crate::ring::{PushError, Sender};
use crate::stats::Counters;
use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use crate::sync::Arc;

/// A request to the dispatcher, handled between batches.
pub(crate) enum Control<T> {
    /// A new watch: index it (if pushed), schedule its bookmarks, time its wait.
    Start(Arc<WatcherShared<T>>),
    /// A parked watch caught up from the window and asks to rejoin live dispatch.
    Rejoin(Arc<WatcherShared<T>>),
    /// A watch ended or was dropped: take it out of the index.
    Stop(Arc<WatcherShared<T>>),
    /// A list waits for a revision the cacher has not reached; not a watcher's, but the
    /// same queue and the same timers serve it.
    AwaitRevision(RevisionWait),
}

/// An event the dispatcher pushed, with the window position of its record.
pub(crate) struct Pushed<T> {
    pub(crate) position: u64,
    /// The revision the watcher is complete up to once it has this event (see
    /// `Record::complete`): a watcher pushed only some records of a revision cannot tell
    /// the last one.
    pub(crate) complete: u64,
    pub(crate) event: Event<T>,
}

/// Where a pushed watcher stands with the dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for the dispatcher to add it to live dispatch.
    Joining,
    /// In live dispatch: every matching record after position
    /// [`WatcherShared::joined_at`] is pushed.
    Live,
    /// Dropped from live dispatch because its buffer was full; every matching record up
    /// to position `p` was pushed. The consumer catches up from the window and rejoins.
    Parked(u64),
    /// Ended because its buffer stayed full; every matching event up to revision `r` was
    /// pushed (and perhaps some of the next revision's, which the consumer drops).
    Terminated(u64),
}

/// A [`Phase`] packed into one atomic: the tag in the low two bits, the position or
/// revision above.
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
    fn store(&self, phase: Phase) {
        self.0.store(Self::pack(phase), Ordering::Release);
    }

    /// The consumer's transition `from` → `to`; fails if the phase moved meanwhile.
    fn transition(&self, from: Phase, to: Phase) -> bool {
        self.0.compare_exchange(Self::pack(from), Self::pack(to), Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

/// Everything a watch and the dispatcher share about one watcher.
pub(crate) struct WatcherShared<T> {
    pub(crate) filter: Filter<T>,
    /// Events pushed by the dispatcher, popped by the watch (which holds the receiving
    /// half); `None` for pulling watchers.
    buffer: Option<Sender<Pushed<T>>>,
    /// The most events the watcher may fall behind (its buffer size, also for pullers).
    pub(crate) buffer_len: usize,
    phase: PhaseCell,
    /// The window position the dispatcher joined this watcher at: records after it are
    /// pushed. Written by the dispatcher before it stores `Live` (which publishes it).
    joined_at: AtomicU64,
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
    /// A watch from a future revision: the revision it waits for (0: none). The
    /// dispatcher joins a pushed watcher only once it has applied this revision.
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
    /// The revision of the last event pushed to the watcher. Read and written by the
    /// dispatcher only (`Relaxed`): a watcher that holds part of a revision cannot be
    /// ended before it, only parked.
    pushed_revision: AtomicU64,
    /// Set by the consumer when the watch is dropped; the dispatcher stops offering and
    /// removes the watcher between events (a deferred stop).
    dropped: AtomicBool,
}

impl<T> WatcherShared<T> {
    /// A watcher; `buffer` is the sending half of its pushed buffer, for an indexed watch
    /// (the watch holds the receiving half).
    pub(crate) fn new(
        filter: Filter<T>,
        buffer: Option<Sender<Pushed<T>>>,
        buffer_len: usize,
        bookmarks: bool,
        (awaits, started_at): (u64, std::time::Duration),
    ) -> Self {
        Self {
            filter,
            buffer,
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
            pushed_revision: AtomicU64::new(0),
            dropped: AtomicBool::new(false),
        }
    }

    /// Whether the dispatcher pushes events to this watcher (it asked for a trigger value).
    pub(crate) fn is_pushed(&self) -> bool {
        self.buffer.is_some()
    }

    pub(crate) fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    /// The consumer is done with the watcher; returns whether this call marked it (the
    /// first call does). `AcqRel`: the dispatcher that sees the mark stops offering.
    pub(crate) fn mark_dropped(&self) -> bool {
        !self.dropped.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase.load()
    }

    /// The dispatcher offers `pushed` without waiting; `Err` gives it back when the buffer
    /// is full.
    pub(crate) fn offer(&self, pushed: Pushed<T>) -> Result<(), Pushed<T>> {
        let buffer = self.buffer.as_ref().expect("only pushed watchers are offered events");
        let revision = pushed.event.revision();
        buffer.push(pushed).map_err(|(PushError::Full(pushed) | PushError::Closed(pushed))| pushed)?;
        self.pushed_revision.store(revision, Ordering::Relaxed);
        Ok(())
    }

    /// Whether the watcher was pushed part of revision `revision` already (the dispatcher
    /// asks, partway through one).
    pub(crate) fn holds_part_of(&self, revision: u64) -> bool {
        self.pushed_revision.load(Ordering::Relaxed) == revision
    }

    /// Whether the pushed buffer has room now.
    pub(crate) fn has_room(&self) -> bool {
        self.buffer.as_ref().is_some_and(|buffer| buffer.len() < buffer.capacity())
    }

    /// The dispatcher adds the watcher to live dispatch after window position `position`
    /// (Joining → Live).
    pub(crate) fn join(&self, position: u64) {
        self.joined_at.store(position, Ordering::Relaxed);
        self.phase.store(Phase::Live);
        self.consumer.wake();
    }

    /// Readable after observing `Live` or a later phase through [`Self::phase`].
    pub(crate) fn joined_at(&self) -> u64 {
        self.joined_at.load(Ordering::Relaxed)
    }

    /// The dispatcher takes the watcher out of live dispatch: every matching record up to
    /// position `delivered` was pushed (Live → Parked).
    pub(crate) fn park(&self, delivered: u64, counters: &Counters) {
        // Counters first: the phase store publishes them to the consumer.
        counters.parked();
        self.phase.store(Phase::Parked(delivered));
        self.consumer.wake();
    }

    /// The dispatcher ends the watcher: every matching event up to revision `delivered`
    /// was pushed (Live → Terminated).
    pub(crate) fn terminate(&self, delivered: u64, counters: &Counters) {
        counters.terminated();
        self.phase.store(Phase::Terminated(delivered));
        self.consumer.wake();
    }

    /// The consumer of a parked watcher has caught up from the window and asks to come
    /// back (Parked → Joining); false if the phase is no longer the one it saw.
    pub(crate) fn ask_to_rejoin(&self, parked: Phase) -> bool {
        debug_assert!(matches!(parked, Phase::Parked(_)));
        self.phase.transition(parked, Phase::Joining)
    }

    /// The dispatcher handles a rejoin request at window position `position`: the watcher
    /// is no longer parked, and joins live dispatch unless it was dropped meanwhile.
    /// Returns whether it joined (the caller then indexes it).
    pub(crate) fn rejoin(&self, position: u64, counters: &Counters) -> bool {
        counters.unparked();
        if self.is_dropped() {
            return false;
        }
        self.join(position);
        true
    }

    /// The dispatcher takes the watcher out for good (after the consumer dropped it).
    pub(crate) fn stop(&self, counters: &Counters) {
        if matches!(self.phase(), Phase::Parked(_)) {
            counters.unparked();
        }
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

    /// The dispatcher ends the wait for a future revision at `current`. `Release`, and
    /// stored before the dispatcher applies anything newer: a consumer that sees the
    /// window reach the awaited revision also sees a time-out that came first.
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
            .field("pushed", &self.is_pushed())
            .field("phase", &self.phase())
            .field("dropped", &self.is_dropped())
            .finish_non_exhaustive()
    }
}
