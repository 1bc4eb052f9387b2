//! The dispatcher: the one thread that orders changes and fans them out.
//!
//! Per batch drained from the incoming ring, for each change: take its revision (the next
//! one in embedded mode, the upstream's in upstream mode), apply it to the store (which
//! yields the previous object), append the record to the window, and offer it to the
//! indexed watchers under the trigger values of the new and previous objects. An
//! upstream transaction is several records at one revision; a relist is the difference
//! between the store and the upstream's state, appended the same way. Unindexed watchers are not offered anything: they read the window
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
//! nothing at or below that revision is ever pushed to it. Every message is applied
//! whole within one batch, so batches end, the state is published and watchers join
//! only between revisions.

pub(crate) mod awaiting;
pub(crate) mod bookmarks;
pub(crate) mod budget;
pub(crate) mod index;

use crate::event::{Origin, Record};
use crate::filter::TriggerTags;
use crate::hand_off::{Control, Phase, Pushed, WatcherShared};
use crate::notify::thread_waker;
use crate::options::SlowWatcherPolicy;
use crate::publish::{Message, Relist, Transaction, Verdict, Written};
use crate::ready::Readiness;
use crate::ring::Receiver;
use crate::shared::Shared;
use crate::stats::BatchFigures;
use crate::store::StoreWriter;
use crate::sync::atomic::Ordering;
use crate::sync::{park_timeout, thread, Arc};
use crate::window::WindowWriter;
use awaiting::Awaiting;
use bookmarks::Bookmarks;
use budget::Budget;
use index::Index;
use std::cmp::Ordering as KeyOrder;
use std::task::Waker;
use std::time::{Duration, Instant};

/// The most messages applied between two looks at registrations and timers.
const BATCH: usize = 256;

pub(crate) struct Dispatcher<T> {
    shared: Arc<Shared<T>>,
    /// The incoming ring's one consumer.
    incoming: Receiver<Message<T>>,
    window: WindowWriter<T>,
    store: StoreWriter<T>,
    index: Index<T>,
    budget: Budget,
    bookmarks: Bookmarks<T>,
    /// Watches and lists waiting for a revision not applied yet.
    awaiting: Awaiting<T>,
    /// Watchers pushed to in this batch, each listed once and woken at its end.
    touched: Vec<Arc<WatcherShared<T>>>,
    /// Watchers whose buffer was full for the current event (Terminate policy).
    blocked: Vec<(Arc<WatcherShared<T>>, Pushed<T>)>,
    /// Watchers to take out of the index once the current event's fan-out ends.
    leaving: Vec<Arc<WatcherShared<T>>>,
    /// Conditional changes applied in this batch, answered once it is published so that
    /// a caller reads its own write.
    replies: Vec<(Reply<T>, Written<T>)>,
    /// The last complete revision: every record of it and before is appended. Moves
    /// only after a revision's last record.
    revision: u64,
    waker: Waker,
}

type Reply<T> = futures_channel::oneshot::Sender<Verdict<T>>;

/// One key's change within a revision: the object after (`None`: deleted) and before.
type KeyChange<T> = (std::sync::Arc<str>, Option<std::sync::Arc<T>>, Option<std::sync::Arc<T>>);

impl<T: Send + Sync + 'static> Dispatcher<T> {
    /// `built_at` is the clock time of `build()`: the budget starts filling from then.
    pub(crate) fn new(
        shared: Arc<Shared<T>>,
        incoming: Receiver<Message<T>>,
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
            awaiting: Awaiting::new(),
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
        // Taken one message ahead of the one applied, so that its allocations are on their
        // way into this core's cache meanwhile (`prefetch_change`).
        let mut next: Option<Message<T>> = None;
        while applied < BATCH {
            let Some(message) = self.incoming.pop() else {
                if self.incoming.is_closed() && self.incoming.len() > 0 {
                    // A producer claimed a slot before the close and is still writing it.
                    thread::yield_now();
                    continue;
                }
                break;
            };
            prefetch_change(&message);
            if let Some(taken) = next.replace(message) {
                self.apply(taken, now);
            }
            applied += 1;
        }
        if let Some(taken) = next {
            self.apply(taken, now);
        }
        // Parked producers are woken only once the ring is down to half. A producer woken
        // after every batch refills one batch and parks again, so each wake-up (a futex
        // call on this thread) would buy one batch; woken at half, it buys half a ring,
        // and the half still queued keeps this thread busy while the producer runs.
        // Never a lost wake-up: a producer parks only on a full ring, and this thread
        // goes idle only when it finds nothing to take (a message still being written
        // wakes it once written), so it drains to half and wakes them before it sleeps.
        // `a_producer_parked_on_a_full_ring_is_woken_at_half` is the loom model.
        if applied > 0 && self.incoming.len() <= self.shared.incoming.capacity() / 2 {
            self.shared.producers.notify_all();
        }
        applied
    }

    fn apply(&mut self, message: Message<T>, now: Duration) {
        // Embedded mode numbers changes itself, densely.
        let next = self.revision + 1;
        match message {
            Message::Put { key, object } => self.embedded(next, key, Some(object), None, now),
            Message::Delete { key } => self.embedded(next, key, None, None, now),
            Message::Conditional(conditional) => {
                let current = self.store.get(&conditional.key).cloned();
                if (conditional.check)(current.as_deref()) {
                    self.embedded(next, conditional.key, conditional.object, Some(conditional.reply), now);
                } else {
                    // Nobody may be waiting any more: the caller dropped its future.
                    let _ = conditional.reply.send(Err(current));
                }
            }
            Message::Ready => {
                self.publish_state(now);
                self.shared.ready.advance(Readiness::Ready);
            }
            Message::Change { revision, key, object } => {
                let written = self.write(revision, key, object);
                self.record(revision, written.into_iter(), Origin::Change, now);
            }
            Message::Transaction(transaction) => {
                let Transaction { revision, changes } = *transaction;
                let written: Vec<_> = changes
                    .into_iter()
                    .filter_map(|(key, object)| self.write(revision, key, object))
                    .collect();
                self.record(revision, written.into_iter(), Origin::Change, now);
            }
            Message::Progress(revision) => self.complete(revision),
            Message::Relist(relist) => self.relist(*relist, now),
        }
    }

    /// An embedded change at revision `next`, if it changes anything (a delete of a
    /// missing key does not, and takes no revision); a conditional one's caller hears back
    /// once the batch is published.
    fn embedded(
        &mut self,
        next: u64,
        key: std::sync::Arc<str>,
        object: Option<std::sync::Arc<T>>,
        reply: Option<Reply<T>>,
        now: Duration,
    ) {
        let Some(written) = self.write(next, key, object) else { return };
        if let Some(reply) = reply {
            let (_, object, prev) = &written;
            self.replies
                .push((reply, Written { revision: next, object: object.clone(), prev: prev.clone() }));
        }
        self.record(next, std::iter::once(written), Origin::Change, now);
    }

    /// Writes one change to the store (a put's object stamped with `revision`, if the
    /// cacher stamps); `None` for a delete of a missing key, which is only counted.
    fn write(
        &mut self,
        revision: u64,
        key: std::sync::Arc<str>,
        object: Option<std::sync::Arc<T>>,
    ) -> Option<KeyChange<T>> {
        let Some(mut object) = object else {
            let Some(prev) = self.store.remove(&key) else {
                self.shared.counters.deleted_missing_key();
                return None;
            };
            return Some((key, None, Some(prev)));
        };
        if let Some(stamp) = &self.shared.stamp {
            // The producer made this `Arc` and handed it over: nobody else holds it yet.
            match std::sync::Arc::get_mut(&mut object) {
                Some(value) => stamp(value, revision),
                None => debug_assert!(false, "a published object is shared before it is applied"),
            }
        }
        let prev = self.store.put(key.clone(), object.clone());
        Some((key, Some(object), prev))
    }

    /// Appends `written` (already in the store) as the records of `revision`, offering
    /// each to the indexed watchers it concerns, and completes the revision.
    fn record(
        &mut self,
        revision: u64,
        written: impl ExactSizeIterator<Item = KeyChange<T>>,
        origin: Origin,
        now: Duration,
    ) {
        let last = written.len();
        for (at, (key, object, prev)) in written.enumerate() {
            let ends_revision = at + 1 == last;
            let mut record =
                Record::new((revision, self.revision), key, (object, prev), (origin, ends_revision), now);
            record.triggers = self.trigger_tags(&record);
            self.window.append(record);
            self.fan_out();
        }
        self.complete(revision);
    }

    /// Every record up to `revision` is appended.
    fn complete(&mut self, revision: u64) {
        debug_assert!(revision >= self.revision, "revisions never go back");
        self.revision = revision;
        self.store.set_revision(revision);
    }

    /// An upstream's whole state at a revision: the first one loads the cacher; a later
    /// one is applied as the difference to the current state, in key order.
    fn relist(&mut self, relist: Relist<T>, now: Duration) {
        let Relist { revision, state } = relist;
        if self.shared.ready.get() == Readiness::Pending {
            self.store.replace(state.into_iter().collect());
            self.window.start_at(revision);
            self.complete(revision);
            self.publish_state(now);
            return self.shared.ready.advance(Readiness::Ready);
        }
        self.window.relisted(self.revision, revision);
        let same = self.shared.upstream.expect("only an upstream cacher relists");
        let difference = difference(self.store.objects().iter(), state, same);
        for (key, object, _) in &difference {
            match object {
                Some(object) => drop(self.store.put(key.clone(), object.clone())),
                None => drop(self.store.remove(key)),
            }
        }
        self.record(revision, difference.into_iter(), Origin::Relist, now);
    }

    /// `record`'s trigger tags, while there are pushed watchers to read them: those in
    /// live dispatch may be parked by this very record, and parked ones read it from the
    /// window. (A watcher that joins later reads older records untagged, the slow way.)
    fn trigger_tags(&self, record: &Record<T>) -> TriggerTags {
        match &self.shared.trigger {
            Some(trigger) if self.index.len() > 0 || self.shared.counters.watchers_parked() > 0 => {
                let new = record.object.as_deref().and_then(|object| trigger(object));
                TriggerTags::of(new, record.prev.as_deref().and_then(|object| trigger(object)))
            }
            _ => TriggerTags::UNKNOWN,
        }
    }

    /// Offers the record just appended to the indexed watchers it concerns.
    fn fan_out(&mut self) {
        let Some(trigger) = self.shared.trigger.as_ref().filter(|_| self.index.len() > 0) else { return };
        // Taken only here, so a cacher without indexed watchers pays nothing for it.
        let record = self.window.last();
        let new = record.object.as_deref().and_then(|object| trigger(object));
        let prev = record.prev.as_deref().and_then(|object| trigger(object));
        // A relist's difference never ends a watch: one too full for it is parked and
        // reads it from the window.
        let policy = if record.relisted { SlowWatcherPolicy::Park } else { self.shared.config.policy };
        for watcher in self.index.candidates(new, prev) {
            if watcher.is_dropped() || watcher.phase() != Phase::Live {
                continue;
            }
            let Some(event) = watcher.filter.indexed_event(&record, (new, prev)) else { continue };
            let pushed =
                Pushed { position: record.position, complete: record.complete(), event: event.to_owned() };
            match watcher.offer(pushed) {
                Ok(()) => list_for_wake(&mut self.touched, watcher),
                // A watcher given part of this revision already cannot be ended before it,
                // and the rest may not fit: it is parked and reads the rest from the window.
                Err(_) if policy == SlowWatcherPolicy::Park || watcher.holds_part_of(record.revision) => {
                    watcher.park(record.position - 1, &self.shared.counters);
                    self.leaving.push(watcher.clone());
                }
                Err(pushed) => self.blocked.push((watcher.clone(), pushed)),
            }
        }
        if !self.blocked.is_empty() {
            // Whoever does not get this record has everything before its revision.
            self.wait_for_blocked(record.since);
            // The ring fills while the dispatcher waits: measured again as it goes on.
            self.shared.counters.raise_high_water(self.incoming.len());
        }
        for watcher in self.leaving.drain(..) {
            self.index.remove(&watcher);
        }
    }

    /// The second pass under `Terminate`: wait for each blocked watcher out of the shared
    /// budget; terminate those still full when it runs out, with everything up to
    /// `delivered` pushed.
    fn wait_for_blocked(&mut self, delivered: u64) {
        let counters = &self.shared.counters;
        counters.set_watchers_blocked(self.blocked.len());
        let mut budget = self.budget.take_available(self.shared.clock.now());
        for (watcher, pushed) in std::mem::take(&mut self.blocked) {
            let started = Instant::now();
            if self.push_within(&watcher, pushed, started + budget) {
                list_for_wake(&mut self.touched, &watcher);
            } else {
                watcher.terminate(delivered, counters);
                self.leaving.push(watcher);
            }
            budget = budget.saturating_sub(started.elapsed());
        }
        self.budget.return_unused(budget);
    }

    /// Pushes `pushed` to `watcher`, waiting for room until `deadline`. Returns false if
    /// the deadline passed first; a watcher dropped meanwhile needs nothing more (true).
    fn push_within(&self, watcher: &WatcherShared<T>, mut pushed: Pushed<T>, deadline: Instant) -> bool {
        watcher.consumer.wake();
        loop {
            match watcher.offer(pushed) {
                Ok(()) => return true,
                Err(rejected) => pushed = rejected,
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

    /// Publishes the revision reached and the state: the window's revision first, so a
    /// watch that starts from a state it listed finds every record up to it; then the
    /// window may let go of what only the previous state needed.
    fn publish_state(&mut self, now: Duration) {
        self.window.publish_revision(self.revision);
        self.store.publish();
        self.window.trim(now);
    }

    /// After a batch: update the counters, publish the state, wake whoever waits for it.
    /// Counters go first so that anyone who has seen the new state sees them too.
    fn end_batch(&mut self, now: Duration) {
        self.shared.counters.batch(BatchFigures {
            objects: self.store.len(),
            watchers_indexed: self.index.len(),
            window_capacity: self.window.capacity(),
            budget_left: self.budget.available(now),
        });
        self.publish_state(now);
        self.shared.counters.set_window_bytes(self.window.bytes());
        for (reply, written) in self.replies.drain(..) {
            let _ = reply.send(Ok(written));
        }
        self.shared.window.waiters.notify_all();
        for watcher in self.touched.drain(..) {
            watcher.wake_listed.store(false, Ordering::Relaxed);
            watcher.consumer.wake();
        }
        let (head, index) = (self.window.head(), &mut self.index);
        let ready = self.shared.ready.get() == Readiness::Ready;
        self.awaiting.reached((self.revision, ready), |watcher| {
            if watcher.is_pushed() {
                watcher.join(head);
                index.insert(watcher);
            }
        });
    }

    fn handle_control(&mut self) {
        let counters = &self.shared.counters;
        let head = self.window.head();
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
                        self.awaiting.watch(deadline, watcher);
                    } else if watcher.is_pushed() {
                        watcher.join(head);
                        self.index.insert(watcher);
                    }
                }
                Control::Rejoin(watcher) => {
                    if watcher.rejoin(head, counters) {
                        self.index.insert(watcher);
                    }
                }
                Control::Stop(watcher) => {
                    self.index.remove(&watcher);
                    watcher.stop(counters);
                }
                Control::AwaitRevision(wait) => {
                    let ready = self.shared.ready.get() == Readiness::Ready;
                    self.awaiting.list(wait, ready.then_some(self.revision));
                }
            }
        }
        counters.set_watchers_indexed(self.index.len());
    }

    fn fire_timers(&mut self, now: Duration) {
        self.bookmarks.fire(now, self.revision);
        self.awaiting.time_out(now, self.revision);
    }

    /// The next clock time a timer is due, if any.
    fn next_due(&self) -> Option<Duration> {
        match (self.bookmarks.next_due(), self.awaiting.next_due()) {
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
        let now = self.shared.clock.now();
        self.publish_state(now);
    }
}

impl<T> Drop for Dispatcher<T> {
    /// Ends everything that waits on the dispatcher: producers get `Closed`, every watch
    /// ends with `Closed` after what it has, waiting lists are answered (their replies
    /// dropped with `awaiting`).
    fn drop(&mut self) {
        // Stopped first: whoever sees a watch end with `Closed` also sees `Stopped`.
        self.shared.ready.advance(Readiness::Stopped);
        self.shared.incoming.close();
        self.window.close();
        for watcher in self.index.all().chain(self.awaiting.watchers()) {
            watcher.consumer.wake();
        }
        self.shared.producers.notify_all();
        self.shared.close_control();
    }
}

/// The difference from `current` (in key order) to `state` (sorted by key, each key once),
/// as one key's change each: added, changed (unless `same`) and removed keys. Unchanged
/// keys keep their current object, so readers go on sharing it.
fn difference<'a, T: 'a>(
    current: impl Iterator<Item = (&'a std::sync::Arc<str>, &'a std::sync::Arc<T>)>,
    state: Vec<(std::sync::Arc<str>, std::sync::Arc<T>)>,
    same: fn(&T, &T) -> bool,
) -> Vec<KeyChange<T>> {
    let mut changes = Vec::new();
    let mut current = current.peekable();
    let mut state = state.into_iter().peekable();
    loop {
        let order = match (current.peek(), state.peek()) {
            (None, None) => return changes,
            (Some(_), None) => KeyOrder::Less,
            (None, Some(_)) => KeyOrder::Greater,
            (Some((held, _)), Some((listed, _))) => (**held).cmp(listed),
        };
        match order {
            KeyOrder::Less => {
                let (key, prev) = current.next().expect("peeked");
                changes.push((key.clone(), None, Some(prev.clone())));
            }
            KeyOrder::Greater => {
                let (key, object) = state.next().expect("peeked");
                changes.push((key, Some(object), None));
            }
            KeyOrder::Equal => {
                let ((_, prev), (key, object)) =
                    (current.next().expect("peeked"), state.next().expect("peeked"));
                if !same(prev, &object) {
                    changes.push((key, Some(object), Some(prev.clone())));
                }
            }
        }
    }
}

/// Adds `watcher` to this batch's wake list unless it is already there.
fn list_for_wake<T>(touched: &mut Vec<Arc<WatcherShared<T>>>, watcher: &Arc<WatcherShared<T>>) {
    if !watcher.wake_listed.load(Ordering::Relaxed) {
        watcher.wake_listed.store(true, Ordering::Relaxed);
        touched.push(watcher.clone());
    }
}

/// Starts moving into this core's cache what applying `message` touches first: a
/// change's key and the reference counts of its key and object, which a producer wrote
/// on its own core. Applying a change takes a reference to each for the store and walks
/// the store comparing the key; without this, each of those waits in turn for its cache
/// line to come over from the producer's core. Issued while the previous message is
/// applied, the transfers overlap that work instead. It shows where little else is done
/// per change, producers publishing into a store of a few keys (`ingest`: about a tenth
/// more changes a second); where the store's walk dominates, it is within noise.
fn prefetch_change<T>(message: &Message<T>) {
    let (key, object) = match message {
        Message::Put { key, object } => (key, Some(object)),
        Message::Delete { key } => (key, None),
        Message::Change { key, object, .. } => (key, object.as_ref()),
        _ => return,
    };
    prefetch(std::sync::Arc::as_ptr(key).cast());
    prefetch_counts(key);
    if let Some(object) = object {
        prefetch_counts(object);
    }
}

/// Prefetches the counts of `shared`: std's `Arc` keeps them in the two words before the
/// value (for a value aligned to more than a word they are further back, and this only
/// prefetches padding: a hint, never a fault).
fn prefetch_counts<V: ?Sized>(shared: &std::sync::Arc<V>) {
    let value = std::sync::Arc::as_ptr(shared).cast::<u8>();
    prefetch(value.wrapping_sub(2 * std::mem::size_of::<usize>()));
}

/// A hint that the line holding `address` will be used soon; nothing on targets other
/// than x86-64.
#[inline(always)]
fn prefetch(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is a hint: it never faults and has no effect the program can
    // observe, whatever `address` is (dangling, unmapped or past an allocation), so any
    // pointer is sound here. Its `target_feature` (SSE) is part of x86-64's baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}
