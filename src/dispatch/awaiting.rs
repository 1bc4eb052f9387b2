//! Waits for a revision the cacher has not reached: watches from a future revision and
//! lists at one (`At::AtLeast`, `At::Exact`), as the Kubernetes cacher's
//! `waitUntilFreshAndBlock` waits.
//!
//! Each wait leaves when the dispatcher applies its revision (a pushed watch then joins
//! live dispatch; a list is answered and reads the new state) or when its clock deadline
//! passes (`TooNew`). Both are driven by the dispatcher, between batches, with the same
//! clock as its other timers, so a waiting list holds no thread and a test moves time
//! with a manual clock.

use crate::hand_off::WatcherShared;
use crate::sync::Arc;
use std::time::Duration;

/// What a waiting list hears: `Ok` once the revision is published, `Err(current)` when
/// the wait timed out at the cacher's revision `current`.
pub(crate) type Reached = Result<(), u64>;

/// A list's wait for a revision.
pub(crate) struct RevisionWait {
    pub(crate) revision: u64,
    /// On the cacher's clock.
    pub(crate) deadline: Duration,
    pub(crate) reply: futures_channel::oneshot::Sender<Reached>,
}

pub(crate) struct Awaiting<T> {
    watchers: Vec<(Duration, Arc<WatcherShared<T>>)>,
    lists: Vec<RevisionWait>,
}

impl<T> Awaiting<T> {
    pub(crate) fn new() -> Self {
        Self { watchers: Vec::new(), lists: Vec::new() }
    }

    /// A watch that starts after revision `watcher.awaits`, waiting until `deadline`.
    pub(crate) fn watch(&mut self, deadline: Duration, watcher: Arc<WatcherShared<T>>) {
        self.watchers.push((deadline, watcher));
    }

    /// A list's wait; answered at once if the cacher is ready and at the revision
    /// (`reached`: the cacher's revision once ready, `None` before).
    pub(crate) fn list(&mut self, wait: RevisionWait, reached: Option<u64>) {
        if reached.is_some_and(|revision| wait.revision <= revision) {
            // Nobody may be waiting any more: the caller dropped its future.
            let _ = wait.reply.send(Ok(()));
        } else {
            self.lists.push(wait);
        }
    }

    /// The cacher has published `revision`: every list waiting for it is answered (once
    /// the cacher is `ready`), every watch waiting for it leaves (`join` takes each one
    /// still open).
    pub(crate) fn reached(
        &mut self,
        (revision, ready): (u64, bool),
        mut join: impl FnMut(Arc<WatcherShared<T>>),
    ) {
        if ready {
            self.answer_lists(|wait| wait.revision <= revision, Ok(()));
        }
        self.watchers.retain(|(_, watcher)| {
            if watcher.is_dropped() {
                return false;
            }
            if watcher.awaits > revision {
                return true;
            }
            join(watcher.clone());
            false
        });
    }

    /// Ends every wait whose deadline is at or before `now`, at the cacher's `revision`.
    pub(crate) fn time_out(&mut self, now: Duration, revision: u64) {
        self.answer_lists(|wait| wait.deadline <= now, Err(revision));
        self.watchers.retain(|(deadline, watcher)| {
            if *deadline > now {
                return true;
            }
            watcher.time_out(revision);
            false
        });
    }

    /// Answers `reached` to every list `done` picks; the others keep waiting.
    fn answer_lists(&mut self, done: impl Fn(&RevisionWait) -> bool, reached: Reached) {
        if !self.lists.iter().any(&done) {
            return;
        }
        let (answered, waiting) = std::mem::take(&mut self.lists).into_iter().partition(done);
        self.lists = waiting;
        for wait in answered {
            // Nobody may be waiting any more: the caller dropped its future.
            let _ = wait.reply.send(reached);
        }
    }

    /// The earliest deadline, if any.
    pub(crate) fn next_due(&self) -> Option<Duration> {
        let watchers = self.watchers.iter().map(|(deadline, _)| *deadline);
        watchers.chain(self.lists.iter().map(|wait| wait.deadline)).min()
    }

    /// The watches still waiting (the lists' replies are dropped with `self`, which
    /// answers them `Canceled`).
    pub(crate) fn watchers(&self) -> impl Iterator<Item = &Arc<WatcherShared<T>>> {
        self.watchers.iter().map(|(_, watcher)| watcher)
    }
}
