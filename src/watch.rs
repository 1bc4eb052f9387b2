//! The consuming end of a watch; its semantics are documented on [`Watch`].

use crate::error::{RecvTimeoutError, TryRecvError, WatchError};
use crate::event::{Event, EventRef, Side};
use crate::hand_off::{Control, Phase, Pushed, WatcherShared};
use crate::notify::thread_waker;
use crate::options::{SlowWatcherPolicy, Start, WatchOptions};
use crate::ring::{self, Receiver};
use crate::shared::Shared;
use crate::store::Snapshot;
use crate::sync::{park_timeout, thread, Arc};
use crate::window::{Cursor, Read, Slot};
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

type Item<T> = Result<Event<T>, WatchError>;

/// Default buffers by kind, as in Kubernetes.
const INDEXED_BUFFER: usize = 10;
const UNINDEXED_ON_INDEXED_BUFFER: usize = 1000;
const DEFAULT_BUFFER: usize = 100;

/// The most owned events a one-at-a-time receive takes ahead in one pass.
const AHEAD: usize = 32;

/// The initial events of a `Start::Snapshot` watch, yielded before anything live.
struct Initial<T> {
    snapshot: Arc<Snapshot<T>>,
    /// The last key yielded; the next one is looked up after it.
    last_key: Option<std::sync::Arc<str>>,
}

/// What one step of the consumer found.
enum Step {
    /// This many events (at least one) were passed to the visitor.
    Visited(usize),
    End(WatchError),
    /// Nothing now; `on_window` says the wake-up will come from the window growing
    /// (rather than from the dispatcher pushing or changing this watcher's phase).
    Idle {
        on_window: bool,
    },
}

/// Where a watch stands: the window position it has read up to, and the revision it is
/// complete up to.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    position: u64,
    revision: u64,
}

/// An owned event taken ahead, and where the watch stands once it is yielded.
struct Ahead<T> {
    event: Event<T>,
    progress: Progress,
}

/// Where a step passes the events it finds, each with where the watch stands once it is
/// yielded: lent to a closure (the batch receivers) or made owned (the rest). Steps are
/// generic over it, so that lending passes nothing but the borrowed event.
trait Sink<T> {
    /// A record read from the window, borrowed through the watch's cursor.
    fn window(&mut self, event: EventRef<'_, T>, slot: &mut Slot<'_, T>, progress: Progress);
    /// An event the dispatcher pushed (or one taken ahead), owned already.
    fn owned(&mut self, event: Event<T>, progress: Progress);
    /// A snapshot's object or a bookmark, borrowed.
    fn borrowed(&mut self, event: EventRef<'_, T>, progress: Progress);
}

/// The owned events a one-at-a-time receive took ahead, in order. Filled only when
/// empty, so from the first slot, with no wrap-around, and its slots kept: a slot that
/// is already there is where each event is built. A `VecDeque` builds the event aside,
/// checks whether it must grow, then copies it in, with 16-byte loads of what was just
/// stored a word at a time, which the processor cannot forward to them (the stall
/// `Event`'s word-wide tag removes from the layers above; PERF.md run 16).
struct TakenAhead<T> {
    slots: Vec<Option<Ahead<T>>>,
    /// The next slot to yield.
    next: usize,
    /// The slots filled since the queue was last empty.
    filled: usize,
}

impl<T> Default for TakenAhead<T> {
    fn default() -> Self {
        Self { slots: Vec::new(), next: 0, filled: 0 }
    }
}

impl<T> TakenAhead<T> {
    fn is_empty(&self) -> bool {
        self.next == self.filled
    }

    fn push(&mut self, ahead: Ahead<T>) {
        match self.slots.get_mut(self.filled) {
            Some(slot) => *slot = Some(ahead),
            None => self.slots.push(Some(ahead)),
        }
        self.filled += 1;
    }

    fn pop(&mut self) -> Option<Ahead<T>> {
        let taken = self.slots.get_mut(self.next)?.take()?;
        self.next += 1;
        if self.next == self.filled {
            (self.next, self.filled) = (0, 0);
        }
        Some(taken)
    }
}

/// Lends each event to a closure.
struct Lend<'v, T>(&'v mut dyn FnMut(EventRef<'_, T>));

impl<T> Sink<T> for Lend<'_, T> {
    fn window(&mut self, event: EventRef<'_, T>, _: &mut Slot<'_, T>, _: Progress) {
        (self.0)(event);
    }

    fn owned(&mut self, event: Event<T>, _: Progress) {
        (self.0)(event.as_ref());
    }

    fn borrowed(&mut self, event: EventRef<'_, T>, _: Progress) {
        (self.0)(event);
    }
}

/// Makes each event owned as cheaply as its source allows, and passes it on: a window
/// record shares the watch's lease on its chunk, a pushed event moves, the rest clone
/// their `Arc`s.
struct Own<F>(F);

impl<T, F: FnMut(Event<T>, Progress)> Sink<T> for Own<F> {
    fn window(&mut self, event: EventRef<'_, T>, slot: &mut Slot<'_, T>, progress: Progress) {
        let owned = match event {
            EventRef::Added { .. } => Event::Added(slot.entry(Side::New)),
            EventRef::Modified { .. } => Event::Modified(slot.entry(Side::New)),
            EventRef::Deleted { .. } => Event::Deleted(slot.entry(Side::Prev)),
            EventRef::Bookmark { .. } => event.to_owned(),
        };
        (self.0)(owned, progress);
    }

    fn owned(&mut self, event: Event<T>, progress: Progress) {
        (self.0)(event, progress);
    }

    fn borrowed(&mut self, event: EventRef<'_, T>, progress: Progress) {
        (self.0)(event.to_owned(), progress);
    }
}

/// How far a replay from the window may go: up to a position, and no record past a
/// revision.
#[derive(Debug, Clone, Copy)]
struct Until {
    position: u64,
    revision: u64,
}

impl Until {
    const END: Self = Self { position: u64::MAX, revision: u64::MAX };

    fn revision(revision: u64) -> Self {
        Self { revision, ..Self::END }
    }
}

/// What a replay from the window did.
#[derive(Debug, Clone, Copy)]
struct Replayed {
    visited: usize,
    /// It stopped at its limit (rather than at the window's head or the budget).
    at_limit: bool,
}

/// A stream of events for one watcher.
///
/// A [`Watch`] yields every event matching its filter in revision order, exactly once,
/// then ends with one `Err` item that says why and where to resume.
///
/// - **Lagging.** An unindexed watch reads the window at its own pace. An indexed watch
///   gets pushed events into its buffer; when the buffer is full the dispatcher applies
///   the [`SlowWatcherPolicy`]: under `Park` the watch catches up from the window and
///   rejoins, unseen by the consumer, as far as the window reaches; under `Terminate` a
///   watch may hold at most its buffer size of unread events that arrived after it
///   started. Either way the stream has no gap: a watch that can no longer continue ends
///   with `Expired` (fell out of the window) or `TooSlow`.
/// - **Closing.** After shutdown a watch yields everything the cacher applied that
///   matches, then `Err(Closed)`. Dropping a watch is a deferred stop: the dispatcher
///   stops offering to it and removes it between events.
///
/// # Receiving
///
/// - async: a `futures_core::Stream` of `Result<Event<T>, WatchError>` items, the end
///   being the last item (then `None`);
/// - threads: blocking iteration (`for item in &mut watch`) with the same items, or
///   [`Watch::recv`], [`Watch::recv_timeout`] and [`Watch::try_recv`] (never blocks),
///   which say apart "nothing yet" and "ended" and repeat the end's reason once ended;
/// - in batches: [`Watch::visit`] (and `try_visit`, `visit_async`) pass every ready
///   event to a closure, borrowed where it lies, cloning nothing; [`Watch::recv_many`]
///   moves owned events into a `Vec`.
///
/// Every form reads the same way underneath: the window's records in place, one pass
/// for everything ready. The one-at-a-time receivers take up to 32 ready events ahead
/// in that pass (one at a time under `Terminate`, whose bound counts what the consumer
/// has not received); [`Watch::lag`] and [`Watch::revision`] count only what was
/// yielded. An owned event read from the window shares the watch's hold on the window
/// chunk its record lies in (see [`Entry`](crate::Entry)) rather than cloning the key's
/// and the object's `Arc`s, which every watcher of the object would contend on; a
/// borrowed one (`visit`) touches no count at all, and stays the cheapest.
pub struct Watch<T> {
    watcher: Arc<WatcherShared<T>>,
    /// The receiving half of the pushed buffer; `None` for a pulling (unindexed) watch.
    buffer: Option<Receiver<Pushed<T>>>,
    cacher: Arc<Shared<T>>,
    /// The window position read up to: every matching record up to it has been yielded.
    position: u64,
    /// The revision the watch is complete up to: every matching event of it and before
    /// has been yielded, and a new watch after it would continue exactly. Records at or
    /// below it are skipped (the ones a watch from a future revision passes over).
    revision: u64,
    /// Records after this position arrived after the watch started: under `Terminate`
    /// they count toward an unindexed watch's lag (the replay before it does not).
    live_from: u64,
    cursor: Cursor<T>,
    initial: Option<Initial<T>>,
    /// Still waiting for the cacher to reach the start revision (`watcher.awaits`).
    awaiting: bool,
    /// Under `Terminate`, an unindexed watch that fell too far behind yields up to this
    /// revision, then `TooSlow`.
    cutoff: Option<u64>,
    /// How the watch ended, once it has.
    end: Option<WatchError>,
    /// The end has been reported (by any receive method): the stream and the iterators
    /// yield `None` from now on.
    end_reported: bool,
    /// The waker for blocking use, for the thread that made it.
    blocking: Option<(thread::ThreadId, Waker)>,
    /// Owned events the one-at-a-time receivers took ahead, in order, not yet yielded;
    /// `position` and `revision` are past them. Always empty under `Terminate`.
    ahead: TakenAhead<T>,
    /// Where the watch stood after the last event it yielded; read while `ahead` holds
    /// events.
    yielded: Progress,
}

impl<T: Send + Sync + 'static> Watch<T> {
    pub(crate) fn start(cacher: Arc<Shared<T>>, options: WatchOptions<T>) -> Result<Self, WatchError> {
        let filter =
            options.bind(cacher.trigger.as_ref()).map_err(|reason| WatchError::InvalidOptions { reason })?;
        let indexed = options.wants_trigger();
        let buffer_len = match (options.buffer, cacher.config.watcher_buffer) {
            (Some(0), _) => {
                return Err(WatchError::InvalidOptions {
                    reason: "a watch buffer must hold at least one event",
                });
            }
            (Some(events), _) | (None, Some(events)) => events,
            (None, None) if indexed => INDEXED_BUFFER,
            (None, None) if cacher.trigger.is_some() => UNINDEXED_ON_INDEXED_BUFFER,
            (None, None) => DEFAULT_BUFFER,
        };
        let window = &cacher.window;
        let now = window.now();
        let expired = |requested| move |oldest| WatchError::Expired { requested, oldest };
        let ((position, revision), initial, awaits) = match options.start {
            Start::Now => (now, None, 0),
            // Not reached yet: read on from now, passing over records up to `requested`.
            Start::Revision(requested) if requested > now.1 => ((now.0, requested), None, requested),
            Start::Revision(requested) => {
                let position = window.position_after(requested).map_err(expired(requested))?;
                ((position, requested), None, 0)
            }
            Start::Snapshot => {
                // The window holds everything after the published state; it can only have
                // moved past this one once a newer one is published: take that.
                let (snapshot, position) = loop {
                    let snapshot = cacher.store.snapshot();
                    if let Ok(position) = window.position_after(snapshot.revision) {
                        break (snapshot, position);
                    }
                    std::hint::spin_loop();
                };
                ((position, snapshot.revision), Some(Initial { snapshot, last_key: None }), 0)
            }
        };
        let started_at = cacher.clock.now();
        let (sender, buffer) = if indexed {
            let (sender, receiver) = ring::bounded(buffer_len);
            (Some(sender), Some(receiver))
        } else {
            (None, None)
        };
        let watcher =
            Arc::new(WatcherShared::new(filter, sender, buffer_len, options.bookmarks, (awaits, started_at)));
        if indexed || options.bookmarks || awaits > 0 {
            // Refused only after shutdown: the watch then sees the window closed.
            let _ = cacher.send(Control::Start(watcher.clone()));
        }
        if !indexed {
            cacher.counters.unindexed_started();
        }
        Ok(Self {
            watcher,
            buffer,
            cacher,
            position,
            revision,
            live_from: position.max(now.0),
            cursor: Cursor::new(),
            initial,
            awaiting: awaits > 0,
            cutoff: None,
            end: None,
            end_reported: false,
            blocking: None,
            ahead: TakenAhead::default(),
            yielded: Progress::default(),
        })
    }
}

impl<T> Watch<T> {
    /// The next event if one is ready now. Never blocks.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] when nothing is ready yet, [`TryRecvError::Ended`] with
    /// the reason once the watch has ended (on this call and every later one).
    pub fn try_recv(&mut self) -> Result<Event<T>, TryRecvError> {
        match self.poll_one(None) {
            Poll::Ready(result) => result.map_err(TryRecvError::Ended),
            Poll::Pending => Err(TryRecvError::Empty),
        }
    }

    /// The next event, waiting at most `timeout` for it.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`] when nothing arrived in time,
    /// [`RecvTimeoutError::Ended`] with the reason once the watch has ended (on this call
    /// and every later one).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Event<T>, RecvTimeoutError> {
        let deadline = Instant::now() + timeout;
        match self.block_on(Some(deadline), |watch, waker| watch.poll_one(waker)) {
            Some(result) => result.map_err(RecvTimeoutError::Ended),
            None => Err(RecvTimeoutError::Timeout),
        }
    }

    /// The next event, waiting as long as it takes.
    ///
    /// # Errors
    /// The reason the watch ended (on this call and every later one).
    pub fn recv(&mut self) -> Result<Event<T>, WatchError> {
        self.block_on(None, |watch, waker| watch.poll_one(waker)).expect("no deadline")
    }

    /// Moves up to `limit` ready events into `buffer`, waiting for at least one; returns
    /// how many it moved (0 only for a `limit` of 0). The batch form of [`Watch::recv`],
    /// as tokio's `mpsc::Receiver::recv_many`: one wake-up and one pass over the window
    /// for many events.
    ///
    /// # Errors
    /// The reason the watch ended, once every event before the end has been moved.
    pub fn recv_many(&mut self, buffer: &mut Vec<Event<T>>, limit: usize) -> Result<usize, WatchError> {
        self.block_on(None, |watch, waker| {
            watch.poll_visit(waker, limit, &mut Own(|event, _| buffer.push(event)))
        })
        .expect("no deadline")
    }

    /// Calls `visit` for up to `limit` ready events, in order, borrowing each from the
    /// cacher (nothing is cloned, no reference count is touched); waits for at least one.
    /// Returns how many it visited (0 only for a `limit` of 0).
    ///
    /// This is the cheapest way to consume a watch: the window's records are read in
    /// place, as LMAX's batch event handlers read the ring. [`EventRef::to_owned`] keeps
    /// an event past the call.
    ///
    /// ```
    /// use watchcache::{Cacher, Start, WatchOptions};
    ///
    /// let cacher: Cacher<u64> = Cacher::builder().build();
    /// let mut watch = cacher.watch(WatchOptions::new().start(Start::Revision(0))).unwrap();
    /// let producer = cacher.producer();
    /// (1..=3).for_each(|value| producer.put(format!("k{value}"), value).unwrap());
    ///
    /// let mut sum = 0;
    /// while sum < 6 {
    ///     watch.visit(64, |event| sum += **event.object().unwrap()).unwrap();
    /// }
    /// assert_eq!(sum, 6);
    /// ```
    ///
    /// # Errors
    /// The reason the watch ended, once every event before the end has been visited.
    pub fn visit(
        &mut self,
        limit: usize,
        mut visit: impl FnMut(EventRef<'_, T>),
    ) -> Result<usize, WatchError> {
        self.block_on(None, |watch, waker| watch.poll_visit(waker, limit, &mut Lend(&mut visit)))
            .expect("no deadline")
    }

    /// [`Watch::visit`] without waiting: visits what is ready now.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] when nothing is ready, [`TryRecvError::Ended`] with the
    /// reason once the watch has ended and every event before the end was visited.
    pub fn try_visit(
        &mut self,
        limit: usize,
        mut visit: impl FnMut(EventRef<'_, T>),
    ) -> Result<usize, TryRecvError> {
        match self.poll_visit(None, limit, &mut Lend(&mut visit)) {
            Poll::Ready(result) => result.map_err(TryRecvError::Ended),
            Poll::Pending => Err(TryRecvError::Empty),
        }
    }

    /// [`Watch::visit`] in async code: waits without blocking the thread.
    ///
    /// # Errors
    /// The reason the watch ended, once every event before the end has been visited.
    pub async fn visit_async(
        &mut self,
        limit: usize,
        mut visit: impl FnMut(EventRef<'_, T>),
    ) -> Result<usize, WatchError> {
        std::future::poll_fn(|cx| self.poll_visit(Some(cx.waker()), limit, &mut Lend(&mut visit))).await
    }

    /// How many events the cacher has recorded that this watch has not read yet (matching
    /// its filter or not).
    pub fn lag(&self) -> u64 {
        self.cacher.window.head().saturating_sub(self.progress().position)
    }

    /// The revision this watch is complete up to: every matching event of it and before
    /// has been yielded, so a new watch from it ([`Start::Revision`]) continues with no
    /// gap and no duplicate.
    pub fn revision(&self) -> u64 {
        self.progress().revision
    }

    /// Where the watch stands as its consumer sees it: after the last event yielded.
    fn progress(&self) -> Progress {
        if self.ahead.is_empty() {
            self.read_to()
        } else {
            self.yielded
        }
    }

    /// Where the watch has read to, events taken ahead included.
    fn read_to(&self) -> Progress {
        Progress { position: self.position, revision: self.revision }
    }

    /// One owned event, or the end. Takes what is ready ahead in one pass, as a batch
    /// receive does, so that the next calls only pop.
    fn poll_one(&mut self, waker: Option<&Waker>) -> Poll<Result<Event<T>, WatchError>> {
        if self.ahead.is_empty() {
            let batch = match self.cacher.config.policy {
                SlowWatcherPolicy::Terminate => 1,
                SlowWatcherPolicy::Park => AHEAD,
            };
            let mut ahead = std::mem::take(&mut self.ahead);
            let polled = self.poll_steps(
                waker,
                batch,
                &mut Own(|event, progress| ahead.push(Ahead { event, progress })),
            );
            self.ahead = ahead;
            if let Poll::Ready(Err(end)) = polled {
                return Poll::Ready(Err(end));
            }
        }
        match self.ahead.pop() {
            Some(Ahead { event, progress }) => {
                self.yielded = progress;
                Poll::Ready(Ok(event))
            }
            None => Poll::Pending,
        }
    }

    /// The next stream or iterator item: an event, then the end once, then `None`.
    fn poll_item(&mut self, waker: Option<&Waker>) -> Poll<Option<Item<T>>> {
        if self.end_reported {
            return Poll::Ready(None);
        }
        self.poll_one(waker).map(Some)
    }

    /// Runs `poll` on this thread until it is ready, parking in between; `None` if
    /// `deadline` passed first.
    fn block_on<R>(
        &mut self,
        deadline: Option<Instant>,
        mut poll: impl FnMut(&mut Self, Option<&Waker>) -> Poll<R>,
    ) -> Option<R> {
        // A consumer that keeps up mostly finds an event waiting: take it without touching
        // the clock or the thread's waker, which cost more than the read itself.
        if let Poll::Ready(ready) = poll(self, None) {
            return Some(ready);
        }
        let current = thread::current().id();
        let waker = match &self.blocking {
            Some((thread, waker)) if *thread == current => waker.clone(),
            _ => {
                let waker = thread_waker();
                self.blocking = Some((current, waker.clone()));
                waker
            }
        };
        loop {
            if let Poll::Ready(ready) = poll(self, Some(&waker)) {
                return Some(ready);
            }
            match deadline {
                None => thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return None;
                    }
                    park_timeout(deadline - now);
                }
            }
        }
    }

    /// What the batch receive methods are built on: events taken ahead first, then
    /// [`Self::poll_steps`].
    fn poll_visit<S: Sink<T>>(
        &mut self,
        waker: Option<&Waker>,
        limit: usize,
        sink: &mut S,
    ) -> Poll<Result<usize, WatchError>> {
        let mut visited = 0;
        while visited < limit {
            let Some(Ahead { event, progress }) = self.ahead.pop() else { break };
            self.yielded = progress;
            sink.owned(event, progress);
            visited += 1;
        }
        if visited > 0 {
            return Poll::Ready(Ok(visited));
        }
        self.poll_steps(waker, limit, sink)
    }

    /// The core every receive method is built on: visits up to `limit` ready events.
    /// `Ready(Ok(n))` after visiting `n >= 1` (or for a `limit` of 0); `Ready(Err(end))`
    /// once the watch has ended and everything before the end was visited, on every call
    /// from then on. With a waker, arms the wake-up before the last re-check, so
    /// `Pending` always has a wake-up coming: from the source the last step named, which
    /// may differ from the one armed first (a phase change between two steps moves a watch
    /// between waiting for a push and waiting for the window).
    fn poll_steps<S: Sink<T>>(
        &mut self,
        waker: Option<&Waker>,
        limit: usize,
        sink: &mut S,
    ) -> Poll<Result<usize, WatchError>> {
        if let Some(end) = &self.end {
            self.end_reported = true;
            return Poll::Ready(Err(end.clone()));
        }
        let mut visited = 0;
        // What is armed so far: nothing, the watcher's own parker (pushes and phase
        // changes), or the window's wait list too (which arms the same parker).
        let mut armed: Option<bool> = None;
        while visited < limit {
            match self.step(limit - visited, sink) {
                Step::Visited(count) => visited += count,
                Step::End(end) => {
                    self.end = Some(end.clone());
                    self.release();
                    if visited == 0 {
                        self.end_reported = true;
                        return Poll::Ready(Err(end));
                    }
                    break;
                }
                Step::Idle { .. } if visited > 0 => break,
                Step::Idle { on_window } => {
                    let covered = armed.is_some_and(|window_armed| window_armed || !on_window);
                    let Some(waker) = waker.filter(|_| !covered) else { return Poll::Pending };
                    if on_window {
                        self.cacher.window.waiters.arm(&self.watcher.consumer, waker);
                    } else {
                        self.watcher.consumer.arm(waker);
                    }
                    armed = Some(on_window);
                }
            }
        }
        Poll::Ready(Ok(visited))
    }

    /// Visits up to `budget` (at least one) events, or says why it cannot.
    fn step<S: Sink<T>>(&mut self, budget: usize, sink: &mut S) -> Step {
        if self.initial.is_some() {
            return self.step_initial(budget, sink);
        }
        if self.awaiting {
            if let Some(step) = self.step_awaiting() {
                return step;
            }
        }
        if self.buffer.is_some() {
            self.step_indexed(budget, sink)
        } else {
            self.step_unindexed(budget, sink)
        }
    }

    /// A snapshot start's initial events, then its `initial_events_end` bookmark.
    fn step_initial<S: Sink<T>>(&mut self, budget: usize, sink: &mut S) -> Step {
        let progress = self.read_to();
        let Some(initial) = &mut self.initial else { unreachable!("called with initial events") };
        let snapshot = &initial.snapshot;
        let filter = &self.watcher.filter;
        let mut visited = 0;
        let mut last = None;
        for (key, object) in snapshot.range("", initial.last_key.as_deref()) {
            if visited == budget {
                break;
            }
            last = Some(key);
            if filter.matches(key, object) {
                sink.borrowed(EventRef::Added { key, object, revision: snapshot.revision }, progress);
                visited += 1;
            }
        }
        if visited == budget {
            initial.last_key = last.cloned();
            return Step::Visited(visited);
        }
        self.initial = None;
        sink.borrowed(EventRef::Bookmark { revision: self.revision, initial_events_end: true }, progress);
        Step::Visited(visited + 1)
    }

    /// Waiting for the start revision: `None` once the window has reached it.
    fn step_awaiting(&mut self) -> Option<Step> {
        let awaits = self.watcher.awaits;
        let window = &self.cacher.window;
        // Loaded in the order the dispatcher stores them backwards: a close seen here
        // makes the head loaded next final, and a time-out the dispatcher decided before
        // it applied the awaited revision is visible once that revision is.
        let closed = window.is_closed();
        let revision = window.revision();
        if let Some(current) = self.watcher.timed_out_at() {
            return Some(Step::End(WatchError::TooNew { requested: awaits, current }));
        }
        if revision < awaits {
            return Some(if closed { Step::End(WatchError::Closed) } else { Step::Idle { on_window: true } });
        }
        self.awaiting = false;
        None
    }

    fn step_unindexed<S: Sink<T>>(&mut self, budget: usize, sink: &mut S) -> Step {
        if self.cacher.config.policy == SlowWatcherPolicy::Terminate && self.cutoff.is_none() {
            self.check_lag();
        }
        let until = Until::revision(self.cutoff.unwrap_or(u64::MAX));
        match self.replay(until, budget, sink) {
            Err(end) => Step::End(end),
            Ok(Replayed { visited: 0, at_limit: true }) => {
                let resume_from = self.cutoff.expect("only a cutoff limits an unindexed replay");
                self.cacher.counters.terminated();
                Step::End(WatchError::TooSlow { resume_from })
            }
            Ok(Replayed { visited: 0, .. }) => self.idle_on_window(sink),
            Ok(Replayed { visited, .. }) => Step::Visited(visited),
        }
    }

    /// Under `Terminate`: sets the cutoff once an unindexed watch has more than its buffer
    /// of unread records that arrived after it started. It yields everything before the
    /// revision of the first record over the limit (and the rest of a revision it has
    /// begun), so that a revision is delivered whole or not at all. A relist's difference
    /// does not count: a watch behind one is held to the rule from where the relist ends.
    fn check_lag(&mut self) {
        let window = &self.cacher.window;
        let buffer = self.watcher.buffer_len as u64;
        let mut probe = Cursor::new();
        loop {
            // Saturating: a reader may see a record through its chunk before the window's
            // `head` moves past it, so `position` can be ahead of the `head` it loads.
            let base = self.position.max(self.live_from);
            if window.head().saturating_sub(base) <= buffer {
                return;
            }
            let (over, relisted) = match window.read(base + buffer + 1, &mut probe) {
                Read::Record(over) => (over.revision, over.relisted),
                // Evicted: the replay reports `Expired`.
                _ => return,
            };
            if !relisted {
                // A revision the watch is partway through is finished first.
                let reading = match window.read(self.position, &mut probe) {
                    Read::Record(last) if last.revision > self.revision => last.revision,
                    _ => 0,
                };
                self.cutoff = Some((over - 1).max(reading));
                return;
            }
            match window.position_after(over) {
                Ok(relist_end) => self.live_from = relist_end,
                Err(_) => return,
            }
        }
    }

    fn step_indexed<S: Sink<T>>(&mut self, budget: usize, sink: &mut S) -> Step {
        loop {
            let phase = self.watcher.phase();
            match phase {
                Phase::Joining => {
                    return self
                        .replay_step(Until::END, budget, sink)
                        .unwrap_or_else(|| self.idle_on_window(sink));
                }
                Phase::Live => {
                    if let Some(step) =
                        self.drain_joined(u64::MAX, budget, sink).or_else(|| self.idle_live(budget, sink))
                    {
                        return step;
                    }
                }
                Phase::Terminated(resume_from) => {
                    return self.drain_joined(resume_from, budget, sink).unwrap_or_else(|| {
                        Step::End(WatchError::TooSlow { resume_from: resume_from.max(self.revision) })
                    });
                }
                Phase::Parked(delivered) => {
                    if let Some(step) = self.drain_joined(u64::MAX, budget, sink) {
                        return step;
                    }
                    // Everything matching up to `delivered` was pushed and read; the
                    // records between are the ones that did not match.
                    self.position = self.position.max(delivered);
                    if let Some(step) = self.replay_step(Until::END, budget, sink) {
                        return step;
                    }
                    if self.cacher.window.is_closed() {
                        return self.idle_on_window(sink);
                    }
                    if self.watcher.ask_to_rejoin(phase) {
                        // Refused only after shutdown: the watch, joining, sees the window
                        // closed.
                        let _ = self.cacher.send(Control::Rejoin(self.watcher.clone()));
                    }
                }
            }
        }
    }

    /// After a join: what the window holds up to the join position, then the buffer,
    /// nothing past revision `cap`; `None` when both are exhausted.
    fn drain_joined<S: Sink<T>>(&mut self, cap: u64, budget: usize, sink: &mut S) -> Option<Step> {
        let until = Until { position: self.watcher.joined_at(), revision: cap };
        self.replay_step(until, budget, sink).or_else(|| self.pop_step(cap, budget, sink))
    }

    /// [`Self::replay`] as a step: `None` when caught up with the window or the limit
    /// before visiting anything.
    fn replay_step<S: Sink<T>>(&mut self, until: Until, budget: usize, sink: &mut S) -> Option<Step> {
        match self.replay(until, budget, sink) {
            Ok(Replayed { visited: 0, .. }) => None,
            Ok(Replayed { visited, .. }) => Some(Step::Visited(visited)),
            Err(error) => Some(Step::End(error)),
        }
    }

    /// Caught up in live dispatch: a due bookmark, the end after shutdown, or wait for a
    /// push; `None` when the phase moved on meanwhile (the caller looks again).
    fn idle_live<S: Sink<T>>(&mut self, budget: usize, sink: &mut S) -> Option<Step> {
        let due = self.watcher.due_bookmark();
        let closed = self.cacher.window.is_closed();
        // A bookmark or the close says every event up to it was pushed, but only to a
        // watcher still live: one parked before them (the phase is stored first, so it
        // is visible now) is owed events from the window instead.
        if self.watcher.phase() != Phase::Live {
            return None;
        }
        // Pushes made before the bookmark or the close are visible now: look once more.
        if let Some(step) = self.pop_step(u64::MAX, budget, sink) {
            return Some(step);
        }
        if let Some(due) = due.filter(|due| self.watcher.take_bookmark(*due)) {
            self.revision = self.revision.max(due);
            let bookmark = EventRef::Bookmark { revision: self.revision, initial_events_end: false };
            sink.borrowed(bookmark, self.read_to());
            return Some(Step::Visited(1));
        }
        if closed {
            self.position = self.position.max(self.cacher.window.head());
            return Some(Step::End(WatchError::Closed));
        }
        Some(Step::Idle { on_window: false })
    }

    /// Caught up with the window: a due bookmark, the end after shutdown, or wait for the
    /// window to grow.
    fn idle_on_window<S: Sink<T>>(&mut self, sink: &mut S) -> Step {
        let window = &self.cacher.window;
        // The bookmark is loaded before the head: caught up with that head, the watch has
        // read every record up to the bookmark's revision (the dispatcher offers it after
        // appending them). Records that arrived since are read first.
        let due = self.watcher.due_bookmark();
        let caught_up = self.position >= window.head();
        if let Some(due) = due.filter(|due| caught_up && self.watcher.take_bookmark(*due)) {
            self.revision = self.revision.max(due);
            let bookmark = EventRef::Bookmark { revision: self.revision, initial_events_end: false };
            sink.borrowed(bookmark, self.read_to());
            return Step::Visited(1);
        }
        if window.is_closed() && self.position >= window.head() {
            return Step::End(WatchError::Closed);
        }
        Step::Idle { on_window: true }
    }

    /// Visits the window's matching records after `position`, within `until`, at most
    /// `budget` of them, borrowing each record where it lies. Stops early, with what it
    /// visited, at the window's head; fails with `Expired` only when it visited nothing
    /// (a later call reports it).
    fn replay<S: Sink<T>>(
        &mut self,
        until: Until,
        budget: usize,
        sink: &mut S,
    ) -> Result<Replayed, WatchError> {
        let window = &self.cacher.window;
        let filter = &self.watcher.filter;
        let mut visited = 0;
        while visited < budget {
            if self.position >= until.position {
                return Ok(Replayed { visited, at_limit: true });
            }
            match window.read(self.position + 1, &mut self.cursor) {
                Read::Record(slot) if slot.revision > until.revision => {
                    return Ok(Replayed { visited, at_limit: true });
                }
                Read::Record(mut slot) => {
                    let position = self.position + 1;
                    self.position = position;
                    if slot.revision <= self.revision {
                        continue;
                    }
                    let revision = self.revision.max(slot.complete());
                    self.revision = revision;
                    if let Some(event) = filter.event(slot.record()) {
                        // From the values, not the fields just stored: one 16-byte load
                        // of both cannot be forwarded from the two 8-byte stores, and
                        // would wait for them to reach the cache.
                        let progress = Progress { position, revision };
                        sink.window(event, &mut slot, progress);
                        visited += 1;
                    }
                }
                Read::Pending => break,
                Read::Evicted if visited > 0 => break,
                Read::Evicted => match window.position_after(self.revision) {
                    // Only records it passes over were evicted (a watch from a future
                    // revision skips those at or below it): read on after them.
                    Ok(owed_after) if owed_after >= self.position => self.position = owed_after,
                    _ => {
                        return Err(WatchError::Expired { requested: self.revision, oldest: window.oldest() })
                    }
                },
            }
        }
        Ok(Replayed { visited, at_limit: false })
    }

    /// Visits up to `budget` pushed events not yet read (older ones were replayed from
    /// the window), none past revision `cap`; `None` when the buffer holds none.
    fn pop_step<S: Sink<T>>(&mut self, cap: u64, budget: usize, sink: &mut S) -> Option<Step> {
        let buffer = self.buffer.as_mut()?;
        let mut visited = 0;
        while visited < budget {
            let Some(pushed) = buffer.pop() else { break };
            if self.cacher.config.policy == SlowWatcherPolicy::Terminate {
                self.watcher.room.wake();
            }
            let revision = pushed.event.revision();
            if pushed.position <= self.position || revision > cap {
                continue;
            }
            self.position = pushed.position;
            self.revision = self.revision.max(pushed.complete);
            sink.owned(pushed.event, Progress { position: self.position, revision: self.revision });
            visited += 1;
        }
        (visited > 0).then_some(Step::Visited(visited))
    }

    /// Leaves live dispatch and the counts; idempotent.
    fn release(&mut self) {
        if !self.watcher.mark_dropped() {
            return;
        }
        if self.watcher.is_pushed() {
            // The dispatcher may be waiting for room in this watcher's buffer.
            self.watcher.room.wake();
            // Refused only after shutdown, when there is no index to leave.
            let _ = self.cacher.send(Control::Stop(self.watcher.clone()));
        } else {
            self.cacher.counters.unindexed_ended();
        }
    }
}

impl<T> Drop for Watch<T> {
    fn drop(&mut self) {
        self.release();
    }
}

impl<T> fmt::Debug for Watch<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("position", &self.position)
            .field("indexed", &self.buffer.is_some())
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl<T> futures_core::Stream for Watch<T> {
    type Item = Item<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_item(Some(cx.waker()))
    }
}

impl<T> futures_core::FusedStream for Watch<T> {
    fn is_terminated(&self) -> bool {
        self.end_reported
    }
}

/// Blocking iteration over a watch by value; see [`Watch`].
#[derive(Debug)]
pub struct IntoIter<T>(Watch<T>);

impl<T> Iterator for IntoIter<T> {
    type Item = Item<T>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.block_on(None, |watch, waker| watch.poll_item(waker)).expect("no deadline")
    }
}

impl<T> IntoIterator for Watch<T> {
    type Item = Item<T>;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter(self)
    }
}

/// Blocking iteration over a borrowed watch; see [`Watch`].
#[derive(Debug)]
pub struct Iter<'a, T>(&'a mut Watch<T>);

impl<T> Iterator for Iter<'_, T> {
    type Item = Item<T>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.block_on(None, |watch, waker| watch.poll_item(waker)).expect("no deadline")
    }
}

impl<'a, T> IntoIterator for &'a mut Watch<T> {
    type Item = Item<T>;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        Iter(self)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Ahead, Progress, TakenAhead};
    use crate::Event;

    fn bookmark(revision: u64) -> Ahead<()> {
        Ahead {
            event: Event::Bookmark { revision, initial_events_end: false },
            progress: Progress::default(),
        }
    }

    fn drain(ahead: &mut TakenAhead<()>) -> Vec<u64> {
        std::iter::from_fn(|| ahead.pop()).map(|taken| taken.event.revision()).collect()
    }

    #[test]
    fn events_taken_ahead_come_out_in_order_across_refills() {
        let mut ahead = TakenAhead::default();
        assert!(ahead.is_empty());
        (1..=3).for_each(|revision| ahead.push(bookmark(revision)));
        assert_eq!(ahead.pop().map(|taken| taken.event.revision()), Some(1));
        ahead.push(bookmark(4));
        assert_eq!(drain(&mut ahead), [2, 3, 4]);
        assert!(ahead.is_empty());
        // A refill reuses the slots from the first, and may take more than before.
        (5..=9).for_each(|revision| ahead.push(bookmark(revision)));
        assert_eq!(drain(&mut ahead), [5, 6, 7, 8, 9]);
        assert!(ahead.is_empty() && ahead.pop().is_none());
    }
}
