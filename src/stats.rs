//! Plain numbers about a cacher, cheap enough to poll.

use crate::sync::counter::{AtomicU64, AtomicUsize};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A point-in-time view of a cacher's counters. Each field is read on its own (`Relaxed`),
/// so fields may come from slightly different instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// The last applied revision.
    pub revision: u64,
    /// The number of live keys.
    pub objects: usize,
    /// The oldest revision a new watch may start from.
    pub window_oldest: u64,
    /// Events the window holds for replay now.
    pub window_len: u64,
    /// The most events the window holds at its current size.
    pub window_capacity: usize,
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
    /// Batches of changes applied, since start: `revision ÷ batches` is the mean batch,
    /// and each batch wakes each watcher with something new at most once.
    pub batches: u64,
    /// Waiting time left in the dispatch budget.
    pub budget_left: Duration,
}

/// The counters behind [`Stats`]. Written by the dispatcher (and by watches for their own
/// counts), read by `stats()`; all `Relaxed`: they are independent numbers, not
/// synchronisation. Counts that follow a watcher's phase change only through
/// [`WatcherShared`](crate::dispatch::watcher::WatcherShared)'s transitions, which call
/// the methods here.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) objects: AtomicUsize,
    pub(crate) window_len: AtomicU64,
    pub(crate) window_capacity: AtomicUsize,
    pub(crate) incoming_high_water: AtomicUsize,
    pub(crate) watchers_indexed: AtomicUsize,
    pub(crate) watchers_unindexed: AtomicUsize,
    pub(crate) watchers_blocked: AtomicUsize,
    watchers_parked: AtomicUsize,
    parks: AtomicU64,
    terminations: AtomicU64,
    pub(crate) deletes_of_missing_keys: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) budget_left_nanos: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set(counter: &AtomicUsize, value: usize) {
        counter.store(value, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn get64(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// A watcher was parked.
    pub(crate) fn parked(&self) {
        Self::add(&self.parks);
        self.watchers_parked.fetch_add(1, Ordering::Relaxed);
    }

    /// A parked watcher rejoined live dispatch or stopped.
    pub(crate) fn unparked(&self) {
        self.watchers_parked.fetch_sub(1, Ordering::Relaxed);
    }

    /// A watcher was terminated as too slow.
    pub(crate) fn terminated(&self) {
        Self::add(&self.terminations);
    }

    /// Raises the high-water mark to `len` if it is higher.
    pub(crate) fn raise_high_water(&self, len: usize) {
        if len > self.incoming_high_water.load(Ordering::Relaxed) {
            self.incoming_high_water.fetch_max(len, Ordering::Relaxed);
        }
    }

    pub(crate) fn watchers_parked(&self) -> usize {
        Self::get(&self.watchers_parked)
    }

    pub(crate) fn parks(&self) -> u64 {
        Self::get64(&self.parks)
    }

    pub(crate) fn terminations(&self) -> u64 {
        Self::get64(&self.terminations)
    }
}
