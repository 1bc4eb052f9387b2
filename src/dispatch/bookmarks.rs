//! Bookmark scheduling in one-second time buckets.
//!
//! As in the Kubernetes cacher's `watcherBookmarkTimeBuckets`: a watcher that asked for
//! bookmarks sits in the bucket of the whole second its next bookmark is due; the
//! dispatcher pops every bucket at or before the current second, marks a bookmark due
//! for each live watcher in it, and files it again one period later. Cost per tick is
//! the number of watchers due, and nothing is scanned in between.

use crate::hand_off::WatcherShared;
use crate::sync::Arc;
use std::collections::BTreeMap;
use std::time::Duration;

pub(crate) struct Bookmarks<T> {
    period: Duration,
    /// Due second → the watchers due then.
    buckets: BTreeMap<u64, Vec<Arc<WatcherShared<T>>>>,
}

impl<T> Bookmarks<T> {
    pub(crate) fn new(period: Duration) -> Self {
        Self { period, buckets: BTreeMap::new() }
    }

    /// Files `watcher` for its next bookmark, one period after `now` (and at least in the
    /// next bucket, so a period under a second cannot make `fire` loop).
    pub(crate) fn schedule(&mut self, watcher: Arc<WatcherShared<T>>, now: Duration) {
        let due = (now + self.period).as_secs().max(now.as_secs() + 1);
        self.buckets.entry(due).or_default().push(watcher);
    }

    /// When the next bucket falls due, if any.
    pub(crate) fn next_due(&self) -> Option<Duration> {
        self.buckets.keys().next().map(|second| Duration::from_secs(*second))
    }

    /// Marks a bookmark at `revision` due for every watcher whose bucket is at or before
    /// `now`, and files each again; dropped watchers leave here.
    pub(crate) fn fire(&mut self, now: Duration, revision: u64) {
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() > now.as_secs() {
                break;
            }
            for watcher in entry.remove() {
                if watcher.is_dropped() {
                    continue;
                }
                watcher.offer_bookmark(revision);
                self.schedule(watcher, now);
            }
        }
    }
}
