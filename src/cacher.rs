//! The cacher: the handle users hold and its builder.
//!
//! One [`Cacher`] owns one dispatcher thread. Handles are cheap clones; the last one
//! dropped (or [`Cacher::shutdown`]) closes the incoming ring, lets the dispatcher apply
//! every change already accepted, and ends every watch with `Closed` after the events it
//! has. Producers, upstream handles and watches do not keep the dispatcher alive.

use crate::clock::{Clock, SystemClock};
use crate::dispatch::awaiting::{Reached, RevisionWait};
use crate::dispatch::Dispatcher;
use crate::error::{ListError, WatchError};
use crate::filter::TriggerFn;
use crate::hand_off::Control;
use crate::notify::block_on;
use crate::options::{At, ListOptions, SlowWatcherPolicy, WatchOptions};
use crate::publish::{Loader, Producer, Upstream};
use crate::ready::Readiness;
use crate::ring;
use crate::shared::{Config, ObjectFns, SameFn, Shared, StampFn};
use crate::stats::{LiveFigures, Stats};
use crate::store::{Snapshot, StoreWriter};
use crate::sync::{lock, Arc, Mutex};
use crate::watch::Watch;
use crate::window::{ByteBudget, Capacity, WindowWriter};
use std::fmt;
use std::time::Duration;

/// How long `NotReady` suggests waiting before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Builds a [`Cacher`]; see [`Cacher::builder`].
pub struct CacherBuilder<T> {
    trigger: Option<TriggerFn<T>>,
    stamp: Option<StampFn<T>>,
    upstream: Option<SameFn<T>>,
    incoming_capacity: usize,
    window: Capacity,
    window_bytes: Option<ByteBudget<T>>,
    config: Config,
    clock: std::sync::Arc<dyn Clock>,
}

impl<T: Send + Sync + 'static> CacherBuilder<T> {
    fn new() -> Self {
        Self {
            trigger: None,
            stamp: None,
            upstream: None,
            incoming_capacity: 1024,
            window: Capacity::DEFAULT,
            window_bytes: None,
            config: Config::default(),
            clock: std::sync::Arc::new(SystemClock::new()),
        }
    }

    /// The trigger function: watches that ask for a trigger value are indexed by it, and
    /// each event is offered only to the watchers under its new and previous objects'
    /// values. It must give the same value for the same object every time: the
    /// dispatcher calls it on each event's objects, and so do indexed watches catching up
    /// from the window. Keep it short; it runs on the dispatcher thread.
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
    /// before the object is visible to anyone, once per put; keep it short. In upstream
    /// mode it runs on every applied put; a relist's objects are not stamped (the
    /// revision that last wrote each is the upstream's to know, not the relist's).
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

    /// Bounds the window in bytes as well as in events: it keeps at most about `limit`
    /// bytes of objects for replay, each weighed by `weigh` (its encoded size, say) once,
    /// on the event that wrote it; a delete weighs the object it deleted. No bound by
    /// default, as in Kubernetes.
    ///
    /// The oldest events go first, as with the event capacity, and the byte bound wins
    /// over the growing window's wish to hold 75 s: a watch or exact list from a revision
    /// it evicted gets [`WatchError::Expired`] or [`ListError::Expired`], as for any
    /// revision older than the window. The events of the newest revision stay whatever
    /// they weigh, so a transaction or relist heavier than `limit` is replayable whole
    /// until a newer revision arrives. Memory follows the bound within about an eighth of
    /// it: evicted events are freed in runs, once a whole run of about `limit / 8` bytes
    /// is evicted.
    /// [`Stats::window_bytes`](crate::Stats::window_bytes) says what the window weighs.
    ///
    /// ```
    /// use watchcache::Cacher;
    ///
    /// // About 64 MiB of replay, weighing each object by its length.
    /// let cacher = Cacher::<String>::builder().window_bytes(64 << 20, |object| object.len()).build();
    /// cacher.producer().put("a", "x".repeat(1 << 20)).unwrap();
    /// # let _ = cacher;
    /// ```
    pub fn window_bytes<F>(mut self, limit: usize, weigh: F) -> Self
    where
        F: Fn(&T) -> usize + Send + Sync + 'static,
    {
        self.window_bytes = Some(ByteBudget { limit, weigh: std::sync::Arc::new(weigh) });
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
        let loader = Loader::new(cacher.producer());
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
        let mut window = WindowWriter::new(self.window, 0);
        if let Some(budget) = self.window_bytes {
            window.limit_bytes(budget);
        }
        let store = StoreWriter::new();
        let (incoming, receiver) = ring::bounded(self.incoming_capacity);
        let shared = Arc::new(Shared::new(
            incoming,
            (window.reader(), store.reader()),
            ObjectFns { trigger: self.trigger, stamp: self.stamp, upstream: self.upstream },
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

impl<T: PartialEq + Send + Sync + 'static> CacherBuilder<T> {
    /// Builds a cacher that follows an upstream store (etcd, or any log that numbers its
    /// own changes), and its one writer: revisions are the upstream's, and a relist after
    /// a break delivers the difference without closing any watch (see [`Upstream`]). The
    /// cacher is [`Readiness::Pending`] until the first [`Upstream::relist`] loads it.
    /// `T`'s `PartialEq` tells a relist which objects did not change.
    ///
    /// A cacher built this way takes changes only through its `Upstream`:
    /// [`Cacher::producer`] panics on it.
    pub fn upstream(self) -> (Cacher<T>, Upstream<T>) {
        let cacher = self.following_upstream().spawn(Readiness::Pending);
        let upstream = Upstream::new(cacher.handle.shared.clone());
        (cacher, upstream)
    }
}

impl<T: PartialEq> CacherBuilder<T> {
    /// Marks the cacher as following an upstream (relists compare by `T`'s `PartialEq`).
    pub(crate) fn following_upstream(mut self) -> Self {
        self.upstream = Some(<T as PartialEq>::eq);
        self
    }
}

impl<T> fmt::Debug for CacherBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacherBuilder")
            .field("indexed", &self.trigger.is_some())
            .field("upstream", &self.upstream.is_some())
            .field("incoming_capacity", &self.incoming_capacity)
            .field("window", &self.window)
            .field("window_bytes", &self.window_bytes.as_ref().map(|budget| budget.limit))
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
    ///
    /// # Panics
    /// On a cacher built with [`CacherBuilder::upstream`], whose revisions are the
    /// upstream's: it takes changes only through its [`Upstream`] handle.
    pub fn producer(&self) -> Producer<T> {
        let shared = &self.handle.shared;
        assert!(
            shared.upstream.is_none(),
            "a cacher of an upstream takes changes only through its Upstream handle"
        );
        Producer::new(shared.clone())
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

    /// The objects matching `options`, in key order, and the revision they reflect. A
    /// list at [`At::AtLeast`] or [`At::Exact`] a revision not reached yet (or on a
    /// cacher still loading its initial state) waits for it up to
    /// [`CacherBuilder::future_wait`], parking the thread; see [`Cacher::list_async`] to
    /// wait in a task, [`Cacher::list_timeout`] to choose the wait and
    /// [`Cacher::try_list`] not to wait.
    ///
    /// # Errors
    /// `NotReady` while the initial state loads (at once for [`At::Latest`], after the
    /// wait otherwise); `TooNew` when the revision is not reached in time; `Expired` for
    /// an `At::Exact` revision the window cannot roll back to; `InvalidOptions` for a
    /// trigger value on a cacher without a trigger function.
    pub fn list(&self, options: ListOptions<T>) -> Result<List<T>, ListError> {
        self.list_timeout(options, self.handle.shared.config.future_wait)
    }

    /// [`Cacher::list`], waiting at most `timeout` for a revision not reached yet (what a
    /// lagging replica answers as "too large resource version" when it runs out).
    ///
    /// # Errors
    /// As [`Cacher::list`].
    pub fn list_timeout(&self, options: ListOptions<T>, timeout: Duration) -> Result<List<T>, ListError> {
        block_on(self.list_within(options, timeout))
    }

    /// [`Cacher::list`] without waiting: a revision not reached yet is `TooNew` at once.
    ///
    /// # Errors
    /// As [`Cacher::list`].
    pub fn try_list(&self, options: ListOptions<T>) -> Result<List<T>, ListError> {
        self.list_timeout(options, Duration::ZERO)
    }

    /// [`Cacher::list`] in a task: a wait for a revision not reached yet holds no thread
    /// (the dispatcher answers it, or times it out, between batches). Dropping the future
    /// abandons the wait.
    ///
    /// # Errors
    /// As [`Cacher::list`].
    pub async fn list_async(&self, options: ListOptions<T>) -> Result<List<T>, ListError> {
        self.list_within(options, self.handle.shared.config.future_wait).await
    }

    async fn list_within(&self, options: ListOptions<T>, wait: Duration) -> Result<List<T>, ListError> {
        let shared = &self.handle.shared;
        let filter =
            options.bind(shared.trigger.as_ref()).map_err(|reason| ListError::InvalidOptions { reason })?;
        let snapshot = match options.at {
            At::Latest => {
                self.check_listable()?;
                shared.store.snapshot()
            }
            At::AtLeast(revision) => self.reach(revision, wait).await?,
            At::Exact(revision) => {
                let latest = self.reach(revision, wait).await?;
                if latest.revision == revision {
                    latest
                } else {
                    let rolled_back = shared.window.state_at(&latest, revision);
                    let expired = |unrecorded: crate::window::Unrecorded| ListError::Expired {
                        requested: revision,
                        oldest: unrecorded.oldest,
                    };
                    Arc::new(rolled_back.map_err(expired)?)
                }
            }
        };
        let items = snapshot
            .range(options.prefix_str(), options.after.as_deref())
            .filter(|(key, object)| filter.matches(key, object))
            .take(options.limit)
            .map(|(key, object)| (key.clone(), object.clone()))
            .collect();
        Ok(List { items, revision: snapshot.revision })
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
        let window = &shared.window;
        shared.counters.stats(LiveFigures {
            revision: window.revision(),
            window_oldest: window.oldest(),
            window_len: window.len(),
            incoming_len: shared.incoming.len(),
            incoming_capacity: shared.incoming.capacity(),
        })
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

    /// The published state once the cacher is ready and at `revision`, waiting up to
    /// `wait` (measured on the cacher's clock by the dispatcher, which answers the wait
    /// between batches).
    async fn reach(&self, revision: u64, wait: Duration) -> Result<Arc<Snapshot<T>>, ListError> {
        let shared = &self.handle.shared;
        // Readiness first: a state loaded when it says `Ready` is published (`Acquire`).
        let readiness = shared.ready.get();
        let snapshot = shared.store.snapshot();
        if readiness == Readiness::Ready && snapshot.revision >= revision {
            return Ok(snapshot);
        }
        let too_new = |current| match shared.ready.get() {
            Readiness::Pending => ListError::NotReady { retry_after: RETRY_AFTER },
            _ => ListError::TooNew { requested: revision, current },
        };
        if wait.is_zero() || readiness == Readiness::Stopped {
            return Err(too_new(snapshot.revision));
        }
        let (reply, reached) = futures_channel::oneshot::channel::<Reached>();
        let deadline = shared.clock.now().saturating_add(wait);
        if shared.send(Control::AwaitRevision(RevisionWait { revision, deadline, reply })).is_err() {
            return Err(too_new(shared.store.snapshot().revision));
        }
        match reached.await {
            Ok(Ok(())) => Ok(shared.store.snapshot()),
            Ok(Err(current)) => Err(too_new(current)),
            // The dispatcher stopped first.
            Err(futures_channel::oneshot::Canceled) => Err(too_new(shared.store.snapshot().revision)),
        }
    }
}

/// The answer to a list: the matching objects in key order, and the revision they
/// reflect (one consistent state, never a mix).
#[derive(Debug)]
#[non_exhaustive]
pub struct List<T> {
    /// The objects, with their keys, in key order.
    pub items: Vec<(std::sync::Arc<str>, std::sync::Arc<T>)>,
    /// The revision the state is at.
    pub revision: u64,
}
