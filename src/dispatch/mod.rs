//! The dispatcher: the one thread that orders changes and fans them out.
//!
//! Per batch drained from the incoming ring, for each change: assign the next revision,
//! apply it to the store (which yields the previous object), append the record to the
//! window, and offer it to the indexed watchers under the trigger values of the new and
//! previous objects. Unindexed watchers are not offered anything: they read the window
//! themselves and are woken once per batch. Between batches the dispatcher handles
//! registrations and deferred stops, fires bookmarks and ends waits for future
//! revisions. When there is nothing to do it parks: an idle cacher uses no CPU.
//!
//! Offering is two passes, as in the Kubernetes cacher's `dispatchEvent`: a non-blocking
//! push to every candidate, then the slow-watcher policy for those whose buffer was full
//! (see [`SlowWatcherPolicy`]). A watcher parked or terminated mid-fan-out leaves the
//! index only after the event's fan-out (a deferred stop).
//!
//! A pushed watcher that starts after a revision not applied yet waits in `awaiting`
//! and joins live dispatch at the end of the batch that reaches its revision, so that
//! nothing at or below that revision is ever pushed to it.

pub(crate) mod bookmarks;
pub(crate) mod budget;
pub(crate) mod index;
pub(crate) mod watcher;

use crate::event::{Event, Record};
use crate::notify::thread_waker;
use crate::options::SlowWatcherPolicy;
use crate::ready::Readiness;
use crate::ring::Receiver;
use crate::shared::{Change, Conditional, Control, Shared, Verdict, Written};
use crate::stats::Counters;
use crate::store::StoreWriter;
use crate::sync::atomic::Ordering;
use crate::sync::counter::AtomicU64;
use crate::sync::{park_timeout, thread, Arc};
use crate::window::WindowWriter;
use bookmarks::Bookmarks;
use budget::Budget;
use index::Index;
use std::task::Waker;
use std::time::{Duration, Instant};
use watcher::{Phase, WatcherShared};

/// The most changes applied between two looks at registrations and timers.
const BATCH: usize = 256;

pub(crate) struct Dispatcher<T> {
    shared: Arc<Shared<T>>,
    /// The incoming ring's one consumer.
    incoming: Receiver<Change<T>>,
    window: WindowWriter<T>,
    store: StoreWriter<T>,
    index: Index<T>,
    budget: Budget,
    bookmarks: Bookmarks<T>,
    /// Watches from a revision not applied yet, with the clock time their wait ends.
    /// Each leaves when the revision is applied (a pushed one then joins live dispatch)
    /// or when its wait times out.
    awaiting: Vec<(Duration, Arc<WatcherShared<T>>)>,
    /// Watchers pushed to in this batch, each listed once and woken at its end.
    touched: Vec<Arc<WatcherShared<T>>>,
    /// Watchers whose buffer was full for the current event (Terminate policy).
    blocked: Vec<(Arc<WatcherShared<T>>, Event<T>)>,
    /// Watchers to take out of the index once the current event's fan-out ends.
    leaving: Vec<Arc<WatcherShared<T>>>,
    /// Conditional changes applied in this batch, answered once it is published so that
    /// a caller reads its own write.
    replies: Vec<(Reply<T>, Written<T>)>,
    revision: u64,
    waker: Waker,
}

type Reply<T> = futures_channel::oneshot::Sender<Verdict<T>>;

impl<T: Send + Sync + 'static> Dispatcher<T> {
    /// `built_at` is the clock time of `build()`: the budget starts filling from then.
    pub(crate) fn new(
        shared: Arc<Shared<T>>,
        incoming: Receiver<Change<T>>,
        window: WindowWriter<T>,
        store: StoreWriter<T>,
        built_at: Duration,
    ) -> Self {
        let config = &shared.config;
        Self {
            budget: Budget::new(config.budget_refill_per_second, config.budget_max, built_at),
            bookmarks: Bookmarks::new(config.bookmark_period),
            shared,
            incoming,
            window,
            store,
            index: Index::new(),
            awaiting: Vec::new(),
            touched: Vec::new(),
            blocked: Vec::new(),
            leaving: Vec::new(),
            replies: Vec::new(),
            revision: 0,
            waker: thread_waker(),
        }
    }

    /// Runs until the cacher shuts down and every accepted change has been applied.
    /// Call on the dispatcher's own thread: its waker unparks the thread that built it.
    pub(crate) fn run(mut self) {
        self.shared.clock.wake_on_advance(thread::current());
        // Whether the last round applied nothing (true at the start): the next change to
        // arrive begins a burst, which `gather` holds for the batch window.
        let mut idle = true;
        loop {
            let drain = !idle || self.gather();
            let now = self.shared.clock.now();
            self.handle_control();
            let applied = if drain { self.drain_batch(now) } else { 0 };
            if applied > 0 {
                self.end_batch(now);
            }
            self.fire_timers(now);
            if self.incoming.is_closed() && self.incoming.len() == 0 {
                return self.finish();
            }
            idle = applied == 0;
            if idle {
                self.idle();
            }
        }
    }

    fn drain_batch(&mut self, now: Duration) -> usize {
        // Measured here, once per batch, rather than by every producer on every put
        // (which read the consumer's `head` line each time): the ring is fullest just
        // before the dispatcher drains it.
        self.shared.counters.raise_high_water(self.incoming.len());
        let mut applied = 0;
        while applied < BATCH {
            let Some(change) = self.incoming.pop() else {
                if self.incoming.is_closed() && self.incoming.len() > 0 {
                    // A producer claimed a slot before the close and is still writing it.
                    thread::yield_now();
                    continue;
                }
                break;
            };
            self.apply(change, now);
            applied += 1;
        }
        if applied > 0 {
            self.shared.producers.notify_all();
        }
        applied
    }

    fn apply(&mut self, change: Change<T>, now: Duration) {
        let next = self.revision + 1;
        let (key, object, prev, reply) = match change {
            Change::Put { key, object } => {
                let (object, prev) = self.write(next, &key, object);
                (key, Some(object), prev, None)
            }
            Change::Delete { key } => match self.store.remove(&key) {
                Some(prev) => (key, None, Some(prev), None),
                None => return Counters::add(&self.shared.counters.deletes_of_missing_keys),
            },
            Change::Conditional(conditional) => {
                let Conditional { key, object, check, reply } = *conditional;
                let current = self.store.get(&key).cloned();
                if !check(current.as_deref()) {
                    // Nobody may be waiting any more: the caller dropped its future.
                    let _ = reply.send(Err(current));
                    return;
                }
                match object {
                    Some(object) => {
                        let (object, prev) = self.write(next, &key, object);
                        (key, Some(object), prev, Some(reply))
                    }
                    // `delete_if`'s check passes only for an existing key.
                    None => {
                        let prev = self.store.remove(&key);
                        (key, None, prev, Some(reply))
                    }
                }
            }
            Change::Ready => {
                self.store.publish();
                return self.shared.ready.advance(Readiness::Ready);
            }
        };
        self.append(Record { revision: next, key, object, prev, applied_at: now }, reply);
    }

    /// Gives `record` (at the next revision) to the window and the indexed watchers; a
    /// conditional change's caller hears back once the batch is published.
    fn append(&mut self, record: Record<T>, reply: Option<Reply<T>>) {
        if let Some(reply) = reply {
            let written = Written {
                revision: record.revision,
                object: record.object.clone(),
                prev: record.prev.clone(),
            };
            self.replies.push((reply, written));
        }
        self.revision = record.revision;
        self.store.set_revision(self.revision);
        self.window.append(record);
        self.fan_out();
    }

    /// Stores `object` at `key` as of `revision`, with the revision written in by the
    /// user's stamp if there is one; returns it and the object it replaced.
    #[allow(clippy::type_complexity)]
    fn write(
        &mut self,
        revision: u64,
        key: &std::sync::Arc<str>,
        mut object: std::sync::Arc<T>,
    ) -> (std::sync::Arc<T>, Option<std::sync::Arc<T>>) {
        if let Some(stamp) = &self.shared.stamp {
            // The producer made this `Arc` and handed it over: nobody else holds it yet.
            match std::sync::Arc::get_mut(&mut object) {
                Some(value) => stamp(value, revision),
                None => debug_assert!(false, "a published object is shared before it is applied"),
            }
        }
        let prev = self.store.put(revision, key.clone(), object.clone());
        (object, prev)
    }

    /// Offers the record just appended to the indexed watchers it concerns.
    fn fan_out(&mut self) {
        let Some(trigger) = self.shared.trigger.as_ref().filter(|_| self.index.len() > 0) else { return };
        // Taken only here, so a cacher without indexed watchers pays nothing for it.
        let record = self.window.last();
        let new = record.object.as_deref().and_then(|object| trigger(object));
        let prev = record.prev.as_deref().and_then(|object| trigger(object));
        let policy = self.shared.config.policy;
        for watcher in self.index.candidates(new, prev) {
            if watcher.is_dropped() || watcher.phase() != Phase::Live {
                continue;
            }
            let Some(event) = watcher.filter.indexed_event(&record, (new, prev)) else { continue };
            match watcher.offer(event.to_owned()) {
                Ok(()) => list_for_wake(&mut self.touched, watcher),
                Err(event) => match policy {
                    SlowWatcherPolicy::Park => {
                        watcher.park(record.revision - 1, &self.shared.counters);
                        self.leaving.push(watcher.clone());
                    }
                    SlowWatcherPolicy::Terminate => self.blocked.push((watcher.clone(), event)),
                },
            }
        }
        if !self.blocked.is_empty() {
            self.wait_for_blocked(record.revision);
            // The ring fills while the dispatcher waits: measured again as it goes on.
            self.shared.counters.raise_high_water(self.incoming.len());
        }
        for watcher in self.leaving.drain(..) {
            self.index.remove(&watcher);
        }
    }

    /// The second pass under `Terminate`: wait for each blocked watcher out of the shared
    /// budget; terminate those still full when it runs out.
    fn wait_for_blocked(&mut self, revision: u64) {
        let counters = &self.shared.counters;
        Counters::set(&counters.watchers_blocked, self.blocked.len());
        let mut budget = self.budget.take_available(self.shared.clock.now());
        for (watcher, event) in std::mem::take(&mut self.blocked) {
            let started = Instant::now();
            if self.push_within(&watcher, event, started + budget) {
                list_for_wake(&mut self.touched, &watcher);
            } else {
                watcher.terminate(revision - 1, counters);
                self.leaving.push(watcher);
            }
            budget = budget.saturating_sub(started.elapsed());
        }
        self.budget.return_unused(budget);
    }

    /// Pushes `event` to `watcher`, waiting for room until `deadline`. Returns false if
    /// the deadline passed first; a watcher dropped meanwhile needs nothing more (true).
    fn push_within(&self, watcher: &WatcherShared<T>, mut event: Event<T>, deadline: Instant) -> bool {
        watcher.consumer.wake();
        loop {
            match watcher.offer(event) {
                Ok(()) => return true,
                Err(rejected) => event = rejected,
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            watcher.room.arm(&self.waker);
            if watcher.is_dropped() {
                return true;
            }
            if watcher.has_room() {
                continue;
            }
            park_timeout(deadline - now);
        }
    }

    /// After a batch: update the counters, publish the state, wake whoever waits for it.
    /// Counters go first so that anyone who has seen the new state sees them too.
    fn end_batch(&mut self, now: Duration) {
        let counters = &self.shared.counters;
        Counters::add(&counters.batches);
        Counters::set(&counters.watchers_indexed, self.index.len());
        Counters::set(&counters.objects, self.store.len());
        Counters::set(&counters.window_capacity, self.window.capacity());
        counters.window_len.store(self.window.len(), Ordering::Relaxed);
        counters.budget_left_nanos.store(duration_nanos(self.budget.available(now)), Ordering::Relaxed);
        self.store.publish();
        for (reply, written) in self.replies.drain(..) {
            let _ = reply.send(Ok(written));
        }
        self.shared.window.waiters.notify_all();
        for watcher in self.touched.drain(..) {
            watcher.wake_listed.store(false, Ordering::Relaxed);
            watcher.consumer.wake();
        }
        let (revision, index) = (self.revision, &mut self.index);
        self.awaiting.retain(|(_, watcher)| {
            if watcher.is_dropped() {
                return false;
            }
            if watcher.awaits > revision {
                return true;
            }
            if watcher.is_pushed() {
                watcher.join(revision);
                index.insert(watcher.clone());
            }
            false
        });
    }

    fn handle_control(&mut self) {
        let counters = &self.shared.counters;
        for control in self.shared.take_control() {
            match control {
                Control::Start(watcher) => {
                    if watcher.is_dropped() {
                        continue;
                    }
                    if watcher.bookmarks {
                        self.bookmarks.schedule(watcher.clone(), watcher.started_at);
                    }
                    if watcher.awaits > self.revision {
                        let deadline = watcher.started_at + self.shared.config.future_wait;
                        self.awaiting.push((deadline, watcher));
                    } else if watcher.is_pushed() {
                        watcher.join(self.revision);
                        self.index.insert(watcher);
                    }
                }
                Control::Rejoin(watcher) => {
                    if watcher.rejoin(self.revision, counters) {
                        self.index.insert(watcher);
                    }
                }
                Control::Stop(watcher) => {
                    self.index.remove(&watcher);
                    watcher.stop(counters);
                }
            }
        }
        Counters::set(&counters.watchers_indexed, self.index.len());
    }

    fn fire_timers(&mut self, now: Duration) {
        self.bookmarks.fire(now, self.revision);
        let revision = self.revision;
        self.awaiting.retain(|(deadline, watcher)| {
            if *deadline > now {
                return true;
            }
            watcher.time_out(revision);
            false
        });
    }

    /// The next clock time a timer is due, if any.
    fn next_due(&self) -> Option<Duration> {
        let awaiting = self.awaiting.iter().map(|(deadline, _)| *deadline).min();
        match (self.bookmarks.next_due(), awaiting) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn idle(&self) {
        let shared = &self.shared;
        shared.dispatcher.arm(&self.waker);
        // `has_ready`, not `len() > 0`: a producer that has claimed a slot but not
        // written it yet wakes the dispatcher when it has, so sleeping is right; looping
        // would spin on it.
        if self.incoming.has_ready() || shared.has_control() || self.incoming.is_closed() {
            return;
        }
        match self.next_due() {
            Some(due) => park_timeout(due.saturating_sub(shared.clock.now())),
            None => thread::park(),
        }
    }

    /// After an idle round, with a batch window: when the first change of a burst is
    /// ready, leaves the ring alone until the window has passed, so one batch covers the
    /// burst. Sleeps unarmed, so producers do not wake it per change; shutdown
    /// interrupts it. Returns whether to drain now: not when nothing was ready yet (a
    /// change arriving between this look and the drain must begin a window too).
    fn gather(&self) -> bool {
        let window = self.shared.config.batch_window;
        if window.is_zero() {
            return true;
        }
        if !self.incoming.has_ready() {
            return self.incoming.is_closed();
        }
        let clock = &self.shared.clock;
        let until = clock.now() + window;
        loop {
            let now = clock.now();
            if now >= until || self.incoming.is_closed() {
                return true;
            }
            park_timeout(until - now);
        }
    }

    /// Shut down: every accepted change is applied; publish the final state. Ending the
    /// watches is `Drop`'s job, so that it also happens if user code (a trigger function
    /// or predicate) panics on the dispatcher thread.
    fn finish(mut self) {
        self.store.publish();
    }
}

impl<T> Drop for Dispatcher<T> {
    /// Ends everything that waits on the dispatcher: producers get `Closed`, every watch
    /// ends with `Closed` after what it has, lists stop waiting.
    fn drop(&mut self) {
        // Stopped first: whoever sees a watch end with `Closed` also sees `Stopped`.
        self.shared.ready.advance(Readiness::Stopped);
        self.shared.incoming.close();
        self.window.close();
        for watcher in self.index.all() {
            watcher.consumer.wake();
        }
        for (_, watcher) in &self.awaiting {
            watcher.consumer.wake();
        }
        self.shared.producers.notify_all();
        self.shared.store.waiters.notify_all();
    }
}

/// Adds `watcher` to this batch's wake list unless it is already there.
fn list_for_wake<T>(touched: &mut Vec<Arc<WatcherShared<T>>>, watcher: &Arc<WatcherShared<T>>) {
    if !watcher.wake_listed.load(Ordering::Relaxed) {
        watcher.wake_listed.store(true, Ordering::Relaxed);
        touched.push(watcher.clone());
    }
}

fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Reads back what [`duration_nanos`] stored.
pub(crate) fn load_duration(nanos: &AtomicU64) -> Duration {
    Duration::from_nanos(nanos.load(Ordering::Relaxed))
}
