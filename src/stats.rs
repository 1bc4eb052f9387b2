//! Plain numbers about a cacher, cheap enough to poll.

use crate::sync::counter::{AtomicU64, AtomicUsize};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A point-in-time view of a cacher's counters. Each field is read on its own (`Relaxed`),
/// so fields may come from slightly different instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// The cacher's revision: the last applied (or, from an upstream, the last it reported
    /// progress to).
    pub revision: u64,
    /// The number of live keys.
    pub objects: usize,
    /// The oldest revision a new watch may start from.
    pub window_oldest: u64,
    /// Events the window holds for replay now (several may share a revision).
    pub window_len: u64,
    /// The most events the window holds at its current size.
    pub window_capacity: usize,
    /// What the window's events weigh, by the measure given to
    /// [`CacherBuilder::window_bytes`](crate::CacherBuilder::window_bytes); 0 without it.
    pub window_bytes: usize,
    /// Changes waiting in the incoming ring.
    pub incoming_len: usize,
    /// The incoming ring's capacity.
    pub incoming_capacity: usize,
    /// The most changes the incoming ring has held at once, as the dispatcher found it at
    /// the start of each batch (where the ring is fullest).
    pub incoming_high_water: usize,
    /// Indexed watchers in live dispatch.
    pub watchers_indexed: usize,
    /// Unindexed watchers (they read the window on their own).
    pub watchers_unindexed: usize,
    /// Watchers whose buffer was full during the last event that had any.
    pub watchers_blocked: usize,
    /// Watchers parked now (out of live dispatch, catching up from the window).
    pub watchers_parked: usize,
    /// Times a watcher was parked, since start.
    pub parks: u64,
    /// Watchers terminated as too slow, since start.
    pub terminations: u64,
    /// Deletes of keys that were missing when applied (dropped, never delivered).
    pub deletes_of_missing_keys: u64,
    /// Batches of changes applied, since start: in embedded mode `revision ÷ batches` is
    /// the mean batch, and each batch wakes each watcher with something new at most once.
    pub batches: u64,
    /// Waiting time left in the dispatch budget.
    pub budget_left: Duration,
}

/// The counters behind [`Stats`]. Written by the dispatcher (and by watches for their own
/// counts), read by `stats()`; all `Relaxed`: they are independent numbers, not
/// synchronisation. Counts that follow a watcher's phase change only through
/// [`WatcherShared`](crate::hand_off::WatcherShared)'s transitions, which call the
/// methods here.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    objects: AtomicUsize,
    window_capacity: AtomicUsize,
    window_bytes: AtomicUsize,
    incoming_high_water: AtomicUsize,
    watchers_indexed: AtomicUsize,
    watchers_unindexed: AtomicUsize,
    watchers_blocked: AtomicUsize,
    watchers_parked: AtomicUsize,
    parks: AtomicU64,
    terminations: AtomicU64,
    deletes_of_missing_keys: AtomicU64,
    batches: AtomicU64,
    budget_left_nanos: AtomicU64,
}

/// What the dispatcher reports at the end of each batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchFigures {
    pub(crate) objects: usize,
    pub(crate) watchers_indexed: usize,
    pub(crate) window_capacity: usize,
    pub(crate) budget_left: Duration,
}

/// The figures [`Counters`] do not keep, read from the structures themselves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LiveFigures {
    pub(crate) revision: u64,
    pub(crate) window_oldest: u64,
    pub(crate) window_len: u64,
    pub(crate) incoming_len: usize,
    pub(crate) incoming_capacity: usize,
}

fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    /// A batch was applied.
    pub(crate) fn batch(&self, figures: BatchFigures) {
        add(&self.batches);
        self.objects.store(figures.objects, Ordering::Relaxed);
        self.watchers_indexed.store(figures.watchers_indexed, Ordering::Relaxed);
        self.window_capacity.store(figures.window_capacity, Ordering::Relaxed);
        let nanos = u64::try_from(figures.budget_left.as_nanos()).unwrap_or(u64::MAX);
        self.budget_left_nanos.store(nanos, Ordering::Relaxed);
    }

    /// The window's weight after a batch's eviction.
    pub(crate) fn set_window_bytes(&self, bytes: usize) {
        self.window_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The number of indexed watchers in live dispatch changed between batches.
    pub(crate) fn set_watchers_indexed(&self, watchers: usize) {
        self.watchers_indexed.store(watchers, Ordering::Relaxed);
    }

    /// This many watchers' buffers were full for the current event.
    pub(crate) fn set_watchers_blocked(&self, watchers: usize) {
        self.watchers_blocked.store(watchers, Ordering::Relaxed);
    }

    /// An unindexed watch started.
    pub(crate) fn unindexed_started(&self) {
        self.watchers_unindexed.fetch_add(1, Ordering::Relaxed);
    }

    /// An unindexed watch ended.
    pub(crate) fn unindexed_ended(&self) {
        self.watchers_unindexed.fetch_sub(1, Ordering::Relaxed);
    }

    /// A delete found no object.
    pub(crate) fn deleted_missing_key(&self) {
        add(&self.deletes_of_missing_keys);
    }

    /// A watcher was parked.
    pub(crate) fn parked(&self) {
        add(&self.parks);
        self.watchers_parked.fetch_add(1, Ordering::Relaxed);
    }

    /// A parked watcher rejoined live dispatch or stopped.
    pub(crate) fn unparked(&self) {
        self.watchers_parked.fetch_sub(1, Ordering::Relaxed);
    }

    /// How many watchers are parked now.
    pub(crate) fn watchers_parked(&self) -> usize {
        self.watchers_parked.load(Ordering::Relaxed)
    }

    /// A watcher was terminated as too slow.
    pub(crate) fn terminated(&self) {
        add(&self.terminations);
    }

    /// Raises the high-water mark to `len` if it is higher.
    pub(crate) fn raise_high_water(&self, len: usize) {
        if len > self.incoming_high_water.load(Ordering::Relaxed) {
            self.incoming_high_water.fetch_max(len, Ordering::Relaxed);
        }
    }

    /// Every figure, the counters' and `live`'s.
    pub(crate) fn stats(&self, live: LiveFigures) -> Stats {
        let get = |counter: &AtomicUsize| counter.load(Ordering::Relaxed);
        let get64 = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            revision: live.revision,
            objects: get(&self.objects),
            window_oldest: live.window_oldest,
            window_len: live.window_len,
            window_capacity: get(&self.window_capacity),
            window_bytes: get(&self.window_bytes),
            incoming_len: live.incoming_len,
            incoming_capacity: live.incoming_capacity,
            incoming_high_water: get(&self.incoming_high_water),
            watchers_indexed: get(&self.watchers_indexed),
            watchers_unindexed: get(&self.watchers_unindexed),
            watchers_blocked: get(&self.watchers_blocked),
            watchers_parked: get(&self.watchers_parked),
            parks: get64(&self.parks),
            terminations: get64(&self.terminations),
            deletes_of_missing_keys: get64(&self.deletes_of_missing_keys),
            batches: get64(&self.batches),
            budget_left: Duration::from_nanos(get64(&self.budget_left_nanos)),
        }
    }
}
