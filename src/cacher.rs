//! The cacher: the handle users hold, its builder, and the producer handles.
//!
//! One [`Cacher`] owns one dispatcher thread. Handles are cheap clones; the last one
//! dropped (or [`Cacher::shutdown`]) closes the incoming ring, lets the dispatcher apply
//! every change already accepted, and ends every watch with `Closed` after the events it
//! has. Producers and watches do not keep the dispatcher alive.

use crate::clock::{Clock, SystemClock};
use crate::dispatch::{load_duration, Dispatcher};
use crate::error::{ConditionalError, ListError, PublishError, TryPublishError, WatchError};
use crate::notify::{thread_waker, Parker};
use crate::options::{At, ListOptions, SlowWatcherPolicy, TriggerFn, WatchOptions};
use crate::ready::Readiness;
use crate::ring::{self, PushError};
use crate::shared::{Change, Check, Conditional, Config, Shared, StampFn, Verdict, Written};
use crate::stats::{Counters, Stats};
use crate::store::{Snapshot, StoreWriter};
use crate::sync::{lock, park_timeout, thread, Arc, Mutex};
use crate::watch::Watch;
use crate::window::{Capacity, Cursor, Read, WindowWriter};
use std::fmt;
use std::time::Duration;

/// How long `NotReady` suggests waiting before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Builds a [`Cacher`]; see [`Cacher::builder`].
pub struct CacherBuilder<T> {
    trigger: Option<TriggerFn<T>>,
    stamp: Option<StampFn<T>>,
    incoming_capacity: usize,
    window: Capacity,
    config: Config,
    clock: std::sync::Arc<dyn Clock>,
}

impl<T: Send + Sync + 'static> CacherBuilder<T> {
    fn new() -> Self {
        Self {
            trigger: None,
            stamp: None,
            incoming_capacity: 1024,
            window: Capacity::DEFAULT,
            config: Config::default(),
            clock: std::sync::Arc::new(SystemClock::new()),
        }
    }

    /// The trigger function: watches that ask for a trigger value are indexed by it, and
    /// each event is offered only to the watchers under its new and previous objects'
    /// values.
    pub fn trigger<F>(mut self, trigger: F) -> Self
    where
        F: for<'a> Fn(&'a T) -> Option<&'a str> + Send + Sync + 'static,
    {
        self.trigger = Some(std::sync::Arc::new(trigger));
        self
    }

    /// A function that writes each put's revision into its object (as Kubernetes writes
    /// `metadata.resourceVersion`), so that an object read from a list, a get or an
    /// event carries the revision that last wrote it. It runs on the dispatcher thread
    /// before the object is visible to anyone, once per put; keep it short.
    ///
    /// ```
    /// use watchcache::Cacher;
    ///
    /// struct Versioned { revision: u64, body: String }
    ///
    /// let cacher = Cacher::<Versioned>::builder()
    ///     .stamp_revision(|object, revision| object.revision = revision)
    ///     .build();
    /// cacher.producer().put("a", Versioned { revision: 0, body: "x".into() }).unwrap();
    /// # let _ = cacher;
    /// ```
    pub fn stamp_revision<F>(mut self, stamp: F) -> Self
    where
        F: Fn(&mut T, u64) + Send + Sync + 'static,
    {
        self.stamp = Some(std::sync::Arc::new(stamp));
        self
    }

    /// The most changes waiting for the dispatcher (default 1024; at least 1).
    pub fn incoming_capacity(mut self, changes: usize) -> Self {
        self.incoming_capacity = changes.max(1);
        self
    }

    /// The most events kept for replay (default: 100, growing up to 102,400 while the
    /// window holds less than 75 s of history; at least 1).
    pub fn window_capacity(mut self, events: usize) -> Self {
        self.window = Capacity::Fixed(events.max(1));
        self
    }

    /// One buffer size for every watch, instead of the per-kind defaults (at least 1).
    pub fn watcher_buffer(mut self, events: usize) -> Self {
        self.config.watcher_buffer = Some(events.max(1));
        self
    }

    /// What to do with a watcher whose buffer is full (default [`SlowWatcherPolicy::Park`]).
    pub fn slow_watcher_policy(mut self, policy: SlowWatcherPolicy) -> Self {
        self.config.policy = policy;
        self
    }

    /// The dispatch budget for `Terminate`: waiting time credited per second, and its
    /// cap (default 50 ms per second, at most 100 ms).
    pub fn dispatch_budget(mut self, refill_per_second: Duration, max: Duration) -> Self {
        self.config.budget_refill_per_second = refill_per_second;
        self.config.budget_max = max;
        self
    }

    /// How long the dispatcher leaves a burst of changes in the incoming ring, from the
    /// first one, before it applies them and wakes the watchers (default zero: at once).
    ///
    /// Each batch wakes every watcher with something new once, so at high rates a short
    /// window (a few hundred microseconds) turns many small batches into few large ones:
    /// fewer wake-ups and context switches per event, for up to the window of added
    /// latency. The dispatcher sleeps through the window without being woken by each
    /// change; shutdown ends it at once. A ring that fills during the window makes
    /// producers wait until it ends. Under load (the ring never empties) batches are large
    /// anyway and the window never starts.
    pub fn batch_window(mut self, window: Duration) -> Self {
        self.config.batch_window = window;
        self
    }

    /// The time between bookmarks for watches that asked for them (default 60 s).
    pub fn bookmark_period(mut self, period: Duration) -> Self {
        self.config.bookmark_period = period;
        self
    }

    /// How long a watch or list from a revision not reached yet waits for it (default 3 s).
    pub fn future_wait(mut self, wait: Duration) -> Self {
        self.config.future_wait = wait;
        self
    }

    /// The clock for bookmarks, the budget's refill and future waits (default
    /// [`SystemClock`]); tests pass a [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = std::sync::Arc::new(clock);
        self
    }

    /// Builds the cacher, ready at once, and starts its dispatcher thread.
    pub fn build(self) -> Cacher<T> {
        self.spawn(Readiness::Ready)
    }

    /// Builds a cacher that stays [`Readiness::Pending`] until the returned [`Loader`]
    /// has published the initial state and called [`Loader::finish`].
    pub fn build_pending(self) -> (Cacher<T>, Loader<T>) {
        let cacher = self.spawn(Readiness::Pending);
        let loader = Loader { producer: cacher.producer() };
        (cacher, loader)
    }

    fn spawn(self, readiness: Readiness) -> Cacher<T> {
        let (shared, dispatcher) = self.assemble(readiness);
        let thread = std::thread::Builder::new()
            .name("watchcache-dispatcher".into())
            .spawn(dispatcher)
            .expect("failed to spawn the dispatcher thread");
        Cacher { handle: std::sync::Arc::new(Handle { shared, thread: Mutex::new(Some(thread)) }) }
    }

    /// The shared state, and the dispatcher to run on a thread of the caller's choosing
    /// (a loom thread in the models).
    pub(crate) fn assemble(self, readiness: Readiness) -> (Arc<Shared<T>>, impl FnOnce() + Send + 'static) {
        let window = WindowWriter::new(self.window, 1);
        let store = StoreWriter::new();
        let (incoming, receiver) = ring::bounded(self.incoming_capacity);
        let shared = Arc::new(Shared::new(
            incoming,
            (window.reader(), store.reader()),
            (self.trigger, self.stamp),
            self.config,
            self.clock,
            readiness,
        ));
        let built_at = shared.clock.now();
        let for_dispatcher = shared.clone();
        let run = move || Dispatcher::new(for_dispatcher, receiver, window, store, built_at).run();
        (shared, run)
    }
}

impl<T> fmt::Debug for CacherBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacherBuilder")
            .field("indexed", &self.trigger.is_some())
            .field("incoming_capacity", &self.incoming_capacity)
            .field("window", &self.window)
            .field("config", &self.config)
            .finish()
    }
}

/// Owns the dispatcher thread; dropped with the last [`Cacher`] handle.
struct Handle<T> {
    shared: Arc<Shared<T>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl<T> Handle<T> {
    fn shutdown(&self) {
        self.shared.close();
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread {
            if thread.thread().id() != std::thread::current().id() {
                // The dispatcher never panics on its own; a panic in a user's trigger
                // function or predicate has already been reported by the panic hook.
                let _ = thread.join();
            }
        }
        self.shared.ready.advance(Readiness::Stopped);
    }
}

impl<T> Drop for Handle<T> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A watch cache: ordered ingest, the current state, a replay window and fan-out to
/// watchers. A cheap, cloneable handle; see the [crate docs](crate) for the semantics.
///
/// # Shutdown
///
/// [`Cacher::shutdown`], or dropping the last `Cacher` handle, stops the cacher and waits
/// for its dispatcher thread to finish: every change a producer had published is applied,
/// each watch then yields what it has and ends with [`WatchError::Closed`], waiting lists
/// return, and producers get `Err` (with their value) from then on. [`Producer`]s and
/// [`Watch`]es do not keep a cacher running; only `Cacher` handles do.
///
/// # User code on the dispatcher thread
///
/// The trigger function and indexed watches' predicates run on the dispatcher thread.
/// If one panics, the cacher stops as if shut down: the change being applied is in the
/// window, changes still queued are not applied, every watch ends with `Closed`, and
/// producers get `Closed`.
pub struct Cacher<T> {
    handle: std::sync::Arc<Handle<T>>,
}

impl<T> Clone for Cacher<T> {
    fn clone(&self) -> Self {
        Self { handle: self.handle.clone() }
    }
}

impl<T> fmt::Debug for Cacher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.handle.shared;
        f.debug_struct("Cacher")
            .field("readiness", &shared.ready.get())
            .field("revision", &shared.store.snapshot().revision)
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> Cacher<T> {
    /// A builder with the defaults: Kubernetes' where it has one (see each setter).
    pub fn builder() -> CacherBuilder<T> {
        CacherBuilder::new()
    }

    /// A new producer handle.
    pub fn producer(&self) -> Producer<T> {
        Producer { shared: self.handle.shared.clone() }
    }

    /// Starts a watch. Never blocks: a watch from a revision not reached yet is returned
    /// at once, and its first item is `Err(TooNew)` if the revision is not reached in
    /// time.
    ///
    /// # Errors
    /// `NotReady` while the initial state loads, `Expired` for a revision older than the
    /// window, `Closed` after shutdown, `InvalidOptions` for a trigger value on a cacher
    /// without a trigger function.
    pub fn watch(&self, options: WatchOptions<T>) -> Result<Watch<T>, WatchError> {
        let shared = &self.handle.shared;
        shared.check_ready().map_err(|readiness| match readiness {
            Readiness::Pending => WatchError::NotReady { retry_after: RETRY_AFTER },
            _ => WatchError::Closed,
        })?;
        Watch::start(shared.clone(), options)
    }

    /// The objects matching `options`, in key order, and the revision they reflect.
    ///
    /// # Errors
    /// `NotReady` while the initial state loads; `TooNew` when `At::AtLeast(r)` is not
    /// reached in time; `InvalidOptions` for a trigger value on a cacher without a
    /// trigger function.
    #[allow(clippy::type_complexity)]
    pub fn list(
        &self,
        options: ListOptions<T>,
    ) -> Result<(Vec<(std::sync::Arc<str>, std::sync::Arc<T>)>, u64), ListError> {
        let shared = &self.handle.shared;
        self.check_listable()?;
        let filter =
            options.bind(shared.trigger.as_ref()).map_err(|reason| ListError::InvalidOptions { reason })?;
        let snapshot = match options.at {
            At::Latest => shared.store.snapshot(),
            At::AtLeast(revision) => self.wait_for(revision)?,
            At::Exact(revision) => self.snapshot_at(revision)?,
        };
        let objects = snapshot
            .range(options.prefix_str(), options.after.as_deref())
            .filter(|(key, object)| filter.matches(key, object))
            .take(options.limit)
            .map(|(key, object)| (key.clone(), object.clone()))
            .collect();
        Ok((objects, snapshot.revision))
    }

    /// The object at `key`, if any, and the revision the answer reflects.
    ///
    /// # Errors
    /// `NotReady` while the initial state loads.
    pub fn get(&self, key: &str) -> Result<(Option<std::sync::Arc<T>>, u64), ListError> {
        self.check_listable()?;
        let snapshot = self.handle.shared.store.snapshot();
        Ok((snapshot.objects.get(key).cloned(), snapshot.revision))
    }

    /// The last applied revision (0 before the first change).
    pub fn revision(&self) -> u64 {
        self.handle.shared.store.snapshot().revision
    }

    /// Whether the cacher serves watches and lists.
    pub fn readiness(&self) -> Readiness {
        self.handle.shared.ready.get()
    }

    /// The cacher's counters now.
    pub fn stats(&self) -> Stats {
        let shared = &self.handle.shared;
        let counters = &shared.counters;
        Stats {
            revision: shared.window.head(),
            objects: Counters::get(&counters.objects),
            window_oldest: shared.window.first() - 1,
            window_len: Counters::get64(&counters.window_len),
            window_capacity: Counters::get(&counters.window_capacity),
            incoming_len: shared.incoming.len(),
            incoming_capacity: shared.incoming.capacity(),
            incoming_high_water: Counters::get(&counters.incoming_high_water),
            watchers_indexed: Counters::get(&counters.watchers_indexed),
            watchers_unindexed: Counters::get(&counters.watchers_unindexed),
            watchers_blocked: Counters::get(&counters.watchers_blocked),
            watchers_parked: counters.watchers_parked(),
            parks: counters.parks(),
            terminations: counters.terminations(),
            deletes_of_missing_keys: Counters::get64(&counters.deletes_of_missing_keys),
            batches: Counters::get64(&counters.batches),
            budget_left: load_duration(&counters.budget_left_nanos),
        }
    }

    /// Stops the cacher: applies every change already accepted, then ends every watch
    /// with `Closed` after its buffered events. Producers get `Closed` from then on.
    /// Waits for the dispatcher to finish; idempotent.
    pub fn shutdown(&self) {
        self.handle.shutdown();
    }

    fn check_listable(&self) -> Result<(), ListError> {
        match self.handle.shared.check_ready() {
            Err(Readiness::Pending) => Err(ListError::NotReady { retry_after: RETRY_AFTER }),
            _ => Ok(()),
        }
    }

    /// The state at exactly `revision`: the latest snapshot with the window's newer
    /// records undone, newest first (each record holds the object it replaced).
    fn snapshot_at(&self, revision: u64) -> Result<Arc<Snapshot<T>>, ListError> {
        let latest = self.wait_for(revision)?;
        if latest.revision == revision {
            return Ok(latest);
        }
        let window = &self.handle.shared.window;
        let expired =
            |first: u64| ListError::Expired { requested: revision, oldest: first.saturating_sub(1) };
        // The window's logical retention, as for a watch from `revision`: a chunk still
        // held may have older records, but they are no longer promised.
        let first = window.first();
        if revision + 1 < first {
            return Err(expired(first));
        }
        let mut objects = latest.objects.clone();
        let mut cursor = Cursor::new();
        for newer in (revision + 1..=latest.revision).rev() {
            match window.read(newer, &mut cursor) {
                Read::Record(record) => match &record.prev {
                    Some(prev) => drop(objects.insert(record.key.clone(), prev.clone())),
                    None => drop(objects.remove(&*record.key)),
                },
                Read::Evicted { first } => return Err(expired(first)),
                // A published snapshot's records are all appended: `latest.revision <= head`.
                Read::Pending => unreachable!("revision {newer} is published but not appended"),
            }
        }
        Ok(Arc::new(Snapshot { objects, revision }))
    }

    /// Waits until the published state reaches `revision`, up to the future wait.
    fn wait_for(&self, revision: u64) -> Result<Arc<Snapshot<T>>, ListError> {
        let shared = &self.handle.shared;
        let deadline = shared.clock.now() + shared.config.future_wait;
        let parker = Arc::new(Parker::new());
        let waker = thread_waker();
        shared.clock.wake_on_advance(thread::current());
        loop {
            let snapshot = shared.store.snapshot();
            if snapshot.revision >= revision {
                return Ok(snapshot);
            }
            let now = shared.clock.now();
            if now >= deadline || shared.ready.get() == Readiness::Stopped {
                return Err(ListError::TooNew { requested: revision, current: snapshot.revision });
            }
            shared.store.waiters.arm(&parker, &waker);
            if shared.store.snapshot().revision < revision {
                park_timeout(deadline - now);
            }
        }
    }
}

/// Publishes changes into a cacher. `Clone + Send`; any number may publish at once, and
/// each producer's changes are applied in the order it published them.
///
/// Publishing is asynchronous: a call returns once the change is in the incoming ring,
/// before the dispatcher applies it ([`Cacher::list`] with
/// [`At::AtLeast`](crate::At::AtLeast) waits for it to be applied). Each operation comes
/// in three forms: waiting on the thread (`put`), waiting in a task (`put_async`, which
/// never blocks the thread) and not waiting (`try_put`).
///
/// A producer does not keep the cacher running: once the last [`Cacher`] handle is
/// dropped or [`Cacher::shutdown`] is called, every publish fails with the value.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Producer<T> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

fn put_change<T>(key: impl Into<std::sync::Arc<str>>, value: T) -> Change<T> {
    Change::Put { key: key.into(), object: std::sync::Arc::new(value) }
}

fn delete_change<T>(key: impl Into<std::sync::Arc<str>>) -> Change<T> {
    Change::Delete { key: key.into() }
}

impl<T> Producer<T> {
    /// Sets `key` to `value`, parking the thread while the incoming ring is full.
    ///
    /// # Errors
    /// The cacher has shut down; the value comes back.
    pub fn put(&self, key: impl Into<std::sync::Arc<str>>, value: T) -> Result<(), PublishError<T>> {
        self.shared.publish(put_change(key, value)).map_err(|rejected| PublishError(rejected.into_value()))
    }

    /// Sets `key` to `value`, waiting without blocking the thread while the incoming ring
    /// is full.
    ///
    /// Cancel-safe: dropping the future before it completes publishes nothing.
    ///
    /// # Errors
    /// The cacher has shut down; the value comes back.
    pub async fn put_async(
        &self,
        key: impl Into<std::sync::Arc<str>>,
        value: T,
    ) -> Result<(), PublishError<T>> {
        self.publish_async(put_change(key, value))
            .await
            .map_err(|rejected| PublishError(rejected.into_value()))
    }

    /// Sets `key` to `value` if the incoming ring has room now.
    ///
    /// # Errors
    /// `Full` when the ring is full, `Closed` after shutdown; both carry the value.
    pub fn try_put(&self, key: impl Into<std::sync::Arc<str>>, value: T) -> Result<(), TryPublishError<T>> {
        self.shared.try_publish(put_change(key, value)).map_err(|error| match error {
            PushError::Full(rejected) => TryPublishError::Full(rejected.into_value()),
            PushError::Closed(rejected) => TryPublishError::Closed(rejected.into_value()),
        })
    }

    /// Deletes `key`, parking the thread while the incoming ring is full. A key that is
    /// missing when the dispatcher applies the delete emits nothing (it is counted in
    /// [`Stats::deletes_of_missing_keys`]).
    ///
    /// # Errors
    /// The cacher has shut down.
    pub fn delete(&self, key: impl Into<std::sync::Arc<str>>) -> Result<(), PublishError<()>> {
        self.shared.publish(delete_change(key)).map_err(|_| PublishError(()))
    }

    /// Deletes `key`, waiting without blocking the thread while the incoming ring is
    /// full; see [`Producer::delete`].
    ///
    /// Cancel-safe: dropping the future before it completes publishes nothing.
    ///
    /// # Errors
    /// The cacher has shut down.
    pub async fn delete_async(&self, key: impl Into<std::sync::Arc<str>>) -> Result<(), PublishError<()>> {
        self.publish_async(delete_change(key)).await.map_err(|_| PublishError(()))
    }

    /// Deletes `key` if the incoming ring has room now.
    ///
    /// # Errors
    /// `Full` when the ring is full, `Closed` after shutdown.
    pub fn try_delete(&self, key: impl Into<std::sync::Arc<str>>) -> Result<(), TryPublishError<()>> {
        self.shared.try_publish(delete_change(key)).map_err(|error| match error {
            PushError::Full(_) => TryPublishError::Full(()),
            PushError::Closed(_) => TryPublishError::Closed(()),
        })
    }

    /// Sets `key` to `value` only if `check` passes on the key's current object (`None`
    /// when the key is missing), judged by the dispatcher at this change's place in the
    /// order: a compare-and-swap no other change can slip into. Resolves once the change
    /// is applied and visible to [`Cacher::get`] and [`Cacher::list`], with the revision
    /// it got.
    ///
    /// `check` runs on the dispatcher thread (see [`Cacher`] on user code there); with
    /// [`CacherBuilder::stamp_revision`] it can compare the object's revision.
    ///
    /// Cancel-safe until the change is in the incoming ring (dropping the future then
    /// publishes nothing); after that the change is decided and applied whether or not
    /// anyone awaits the answer.
    ///
    /// ```
    /// use watchcache::{Cacher, ConditionalError};
    ///
    /// # futures::executor::block_on(async {
    /// let cacher = Cacher::<u32>::builder().build();
    /// let producer = cacher.producer();
    /// // Create only if absent.
    /// let created = producer.put_if("a", 1, |current| current.is_none()).await.unwrap();
    /// assert_eq!(created.revision, 1);
    /// let again = producer.put_if("a", 2, |current| current.is_none()).await;
    /// assert!(matches!(again, Err(ConditionalError::Rejected { current: Some(_) })));
    /// # });
    /// ```
    ///
    /// # Errors
    /// `Rejected` with the current object when `check` fails; `Closed` after shutdown.
    pub async fn put_if(
        &self,
        key: impl Into<std::sync::Arc<str>>,
        value: T,
        check: impl FnOnce(Option<&T>) -> bool + Send + 'static,
    ) -> Result<Written<T>, ConditionalError<T>> {
        self.publish_conditional(key.into(), Some(std::sync::Arc::new(value)), Box::new(check)).await
    }

    /// Deletes `key` only if it exists and `check` passes on its object; see
    /// [`Producer::put_if`] for when the check runs and what cancelling does.
    ///
    /// # Errors
    /// `Rejected` when the key is missing (`current: None`) or `check` fails; `Closed`
    /// after shutdown.
    pub async fn delete_if(
        &self,
        key: impl Into<std::sync::Arc<str>>,
        check: impl FnOnce(&T) -> bool + Send + 'static,
    ) -> Result<Written<T>, ConditionalError<T>> {
        let check = move |current: Option<&T>| current.is_some_and(check);
        self.publish_conditional(key.into(), None, Box::new(check)).await
    }

    async fn publish_conditional(
        &self,
        key: std::sync::Arc<str>,
        object: Option<std::sync::Arc<T>>,
        check: Check<T>,
    ) -> Result<Written<T>, ConditionalError<T>> {
        let (reply, verdict) = futures_channel::oneshot::channel::<Verdict<T>>();
        let change = Change::Conditional(Box::new(Conditional { key, object, check, reply }));
        self.publish_async(change).await.map_err(|_| ConditionalError::Closed)?;
        match verdict.await {
            Ok(Ok(written)) => Ok(written),
            Ok(Err(current)) => Err(ConditionalError::Rejected { current }),
            // The dispatcher stopped without applying it (a panic in user code).
            Err(futures_channel::oneshot::Canceled) => Err(ConditionalError::Closed),
        }
    }

    async fn publish_async(&self, change: Change<T>) -> Result<(), Change<T>> {
        let mut slot = Some(change);
        let mut parker = None;
        std::future::poll_fn(|cx| self.shared.poll_publish(&mut slot, &mut parker, cx)).await
    }
}

/// Publishes a pending cacher's initial state; the only handle that can make it ready.
/// Not `Clone`: one writer decides when loading is done.
pub struct Loader<T> {
    producer: Producer<T>,
}

impl<T> fmt::Debug for Loader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loader").finish_non_exhaustive()
    }
}

impl<T> Loader<T> {
    /// Adds `key` to the initial state, waiting while the incoming ring is full.
    ///
    /// # Errors
    /// The cacher has shut down; the value comes back.
    pub fn put(&self, key: impl Into<std::sync::Arc<str>>, value: T) -> Result<(), PublishError<T>> {
        self.producer.put(key, value)
    }

    /// Marks the initial state complete: once the dispatcher has applied everything
    /// published before this call, the cacher becomes [`Readiness::Ready`].
    ///
    /// # Errors
    /// The cacher has shut down.
    pub fn finish(self) -> Result<(), PublishError<()>> {
        self.producer.shared.publish(Change::Ready).map_err(|_| PublishError(()))
    }
}
