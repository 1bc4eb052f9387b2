//! The consuming end of a watch; its semantics are documented on [`Watch`].

use crate::dispatch::watcher::{Phase, WatcherShared};
use crate::error::{RecvTimeoutError, TryRecvError, WatchError};
use crate::event::Event;
use crate::notify::thread_waker;
use crate::options::{SlowWatcherPolicy, Start, WatchOptions};
use crate::ring::{self, Receiver};
use crate::shared::{Control, Shared};
use crate::store::Snapshot;
use crate::sync::atomic::Ordering;
use crate::sync::{park_timeout, thread, Arc};
use crate::window::{Cursor, Read};
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

type Item<T> = Result<Event<T>, WatchError>;

/// Default buffers by kind, as in Kubernetes.
const INDEXED_BUFFER: usize = 10;
const UNINDEXED_ON_INDEXED_BUFFER: usize = 1000;
const DEFAULT_BUFFER: usize = 100;

/// The initial events of a `Start::Snapshot` watch, yielded before anything live.
struct Initial<T> {
    snapshot: Arc<Snapshot<T>>,
    /// The last key yielded; the next one is looked up after it.
    last_key: Option<std::sync::Arc<str>>,
}

/// What one step of the consumer found.
enum Step<T> {
    Yield(Event<T>),
    End(WatchError),
    /// Nothing now; `on_window` says the wake-up will come from the window growing
    /// (rather than from the dispatcher pushing or changing this watcher's phase).
    Idle {
        on_window: bool,
    },
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
///   which say apart "nothing yet" and "ended" and repeat the end's reason once ended.
pub struct Watch<T> {
    watcher: Arc<WatcherShared<T>>,
    /// The receiving half of the pushed buffer; `None` for a pulling (unindexed) watch.
    buffer: Option<Receiver<Event<T>>>,
    cacher: Arc<Shared<T>>,
    /// Every matching event up to this revision has been yielded.
    position: u64,
    /// Events after this revision arrived after the watch started: under `Terminate`
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
    /// The waker for blocking use, for the thread that made it.
    blocking: Option<(thread::ThreadId, Waker)>,
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
        let head = window.head();
        let (position, initial, awaits) = match options.start {
            Start::Now => (head, None, 0),
            Start::Revision(requested) => {
                let oldest = window.first() - 1;
                if requested < oldest {
                    return Err(WatchError::Expired { requested, oldest });
                }
                let awaits = if requested > head { requested } else { 0 };
                (requested, None, awaits)
            }
            Start::Snapshot => {
                let snapshot = cacher.store.snapshot();
                (snapshot.revision, Some(Initial { snapshot, last_key: None }), 0)
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
            cacher.send(Control::Start(watcher.clone()));
        }
        if !indexed {
            cacher.counters.watchers_unindexed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Self {
            watcher,
            buffer,
            cacher,
            position,
            live_from: position.max(head),
            cursor: Cursor::new(),
            initial,
            awaiting: awaits > 0,
            cutoff: None,
            end: None,
            blocking: None,
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
        match self.poll_item(None) {
            Poll::Ready(Some(Ok(event))) => Ok(event),
            Poll::Ready(_) => Err(TryRecvError::Ended(self.end_reason())),
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
        match self.next_blocking(Some(timeout)) {
            Some(Ok(event)) => Ok(event),
            Some(Err(_)) => Err(RecvTimeoutError::Ended(self.end_reason())),
            None if self.end.is_some() => Err(RecvTimeoutError::Ended(self.end_reason())),
            None => Err(RecvTimeoutError::Timeout),
        }
    }

    /// The next event, waiting as long as it takes.
    ///
    /// # Errors
    /// The reason the watch ended (on this call and every later one).
    pub fn recv(&mut self) -> Result<Event<T>, WatchError> {
        match self.next_blocking(None) {
            Some(Ok(event)) => Ok(event),
            _ => Err(self.end_reason()),
        }
    }

    /// How many revisions this watch is behind the cacher's latest.
    pub fn lag(&self) -> u64 {
        self.cacher.window.head().saturating_sub(self.position)
    }

    fn end_reason(&self) -> WatchError {
        self.end.clone().expect("the watch has ended")
    }

    /// The next item, blocking up to `timeout`; `None` when it passed, or after the end.
    fn next_blocking(&mut self, timeout: Option<Duration>) -> Option<Item<T>> {
        // A consumer that keeps up mostly finds an item waiting: take it without touching
        // the clock or the thread's waker, which cost more than the read itself.
        if let Poll::Ready(item) = self.poll_item(None) {
            return item;
        }
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
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
            if let Poll::Ready(item) = self.poll_item(Some(&waker)) {
                return item;
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

    /// One attempt to produce an item; `Ready(None)` after the end item. With a waker,
    /// arms the wake-up before the last re-check, so `Pending` always has a wake-up
    /// coming: from the source the last step named, which may differ from the one armed
    /// first (a phase change between two steps moves a watch between waiting for a push
    /// and waiting for the window).
    fn poll_item(&mut self, waker: Option<&Waker>) -> Poll<Option<Item<T>>> {
        if self.end.is_some() {
            return Poll::Ready(None);
        }
        // What is armed so far: nothing, the watcher's own parker (pushes and phase
        // changes), or the window's wait list too (which arms the same parker).
        let mut armed: Option<bool> = None;
        loop {
            match self.step() {
                Step::Yield(event) => return Poll::Ready(Some(Ok(event))),
                Step::End(error) => {
                    self.end = Some(error.clone());
                    self.release();
                    return Poll::Ready(Some(Err(error)));
                }
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
    }

    fn step(&mut self) -> Step<T> {
        if let Some(initial) = &mut self.initial {
            return match next_initial(initial, &self.watcher) {
                Some(event) => Step::Yield(event),
                None => {
                    self.initial = None;
                    Step::Yield(Event::Bookmark { revision: self.position, initial_events_end: true })
                }
            };
        }
        if self.awaiting {
            if let Some(step) = self.step_awaiting() {
                return step;
            }
        }
        if self.buffer.is_some() {
            self.step_indexed()
        } else {
            self.step_unindexed()
        }
    }

    /// Waiting for the start revision: `None` once the window has reached it.
    fn step_awaiting(&mut self) -> Option<Step<T>> {
        let awaits = self.watcher.awaits;
        let window = &self.cacher.window;
        // Loaded in the order the dispatcher stores them backwards: a close seen here
        // makes the head loaded next final, and a time-out the dispatcher decided before
        // it applied the awaited revision is visible once that revision is.
        let closed = window.is_closed();
        let head = window.head();
        if let Some(current) = self.watcher.timed_out_at() {
            return Some(Step::End(WatchError::TooNew { requested: awaits, current }));
        }
        if head < awaits {
            return Some(if closed { Step::End(WatchError::Closed) } else { Step::Idle { on_window: true } });
        }
        self.awaiting = false;
        None
    }

    fn step_unindexed(&mut self) -> Step<T> {
        if self.cacher.config.policy == SlowWatcherPolicy::Terminate && self.cutoff.is_none() {
            // Saturating: a reader may see a record through its chunk before the window's
            // `head` moves past it, so `position` can be ahead of the `head` it loads.
            let base = self.position.max(self.live_from);
            let buffer = self.watcher.buffer_len as u64;
            if self.cacher.window.head().saturating_sub(base) > buffer {
                self.cutoff = Some(base + buffer);
            }
        }
        if let Some(step) = self.replay_step(self.cutoff.unwrap_or(u64::MAX)) {
            return step;
        }
        if let Some(resume_from) = self.cutoff.filter(|cutoff| self.position >= *cutoff) {
            self.cacher.counters.terminated();
            return Step::End(WatchError::TooSlow { resume_from });
        }
        self.idle_on_window()
    }

    fn step_indexed(&mut self) -> Step<T> {
        loop {
            let phase = self.watcher.phase();
            match phase {
                Phase::Joining => return self.replay_step(u64::MAX).unwrap_or_else(|| self.idle_on_window()),
                Phase::Live => {
                    if let Some(step) = self.drain_joined().or_else(|| self.idle_live()) {
                        return step;
                    }
                }
                Phase::Terminated(resume_from) => {
                    return self.drain_joined().unwrap_or_else(|| {
                        Step::End(WatchError::TooSlow { resume_from: resume_from.max(self.position) })
                    });
                }
                Phase::Parked(delivered) => {
                    if let Some(step) = self.drain_joined() {
                        return step;
                    }
                    self.position = self.position.max(delivered);
                    if let Some(step) = self.replay_step(u64::MAX) {
                        return step;
                    }
                    if self.cacher.window.is_closed() {
                        return self.idle_on_window();
                    }
                    if self.watcher.ask_to_rejoin(phase) {
                        self.cacher.send(Control::Rejoin(self.watcher.clone()));
                    }
                }
            }
        }
    }

    /// After a join: what the window holds up to the join revision, then the buffer;
    /// `None` when both are exhausted.
    fn drain_joined(&mut self) -> Option<Step<T>> {
        let joined_at = self.watcher.joined_at();
        self.replay_step(joined_at).or_else(|| self.pop().map(Step::Yield))
    }

    /// [`Self::replay`] as a step: `None` when caught up with the window or the limit.
    fn replay_step(&mut self, limit: u64) -> Option<Step<T>> {
        match self.replay(limit) {
            Ok(Some(event)) => Some(Step::Yield(event)),
            Ok(None) => None,
            Err(error) => Some(Step::End(error)),
        }
    }

    /// Caught up in live dispatch: a due bookmark, the end after shutdown, or wait for a
    /// push; `None` when the phase moved on meanwhile (the caller looks again).
    fn idle_live(&mut self) -> Option<Step<T>> {
        let due = self.watcher.due_bookmark();
        let closed = self.cacher.window.is_closed();
        // A bookmark or the close says every event up to it was pushed, but only to a
        // watcher still live: one parked before them (the phase is stored first, so it
        // is visible now) is owed events from the window instead.
        if self.watcher.phase() != Phase::Live {
            return None;
        }
        // Pushes made before the bookmark or the close are visible now: look once more.
        if let Some(event) = self.pop() {
            return Some(Step::Yield(event));
        }
        if let Some(due) = due.filter(|due| self.watcher.take_bookmark(*due)) {
            self.position = self.position.max(due);
            return Some(Step::Yield(Event::Bookmark { revision: self.position, initial_events_end: false }));
        }
        if closed {
            self.position = self.position.max(self.cacher.window.head());
            return Some(Step::End(WatchError::Closed));
        }
        Some(Step::Idle { on_window: false })
    }

    /// Caught up with the window: a due bookmark, the end after shutdown, or wait for the
    /// window to grow.
    fn idle_on_window(&mut self) -> Step<T> {
        let window = &self.cacher.window;
        if self.watcher.due_bookmark().is_some_and(|due| self.watcher.take_bookmark(due)) {
            return Step::Yield(Event::Bookmark { revision: self.position, initial_events_end: false });
        }
        if window.is_closed() && self.position >= window.head() {
            return Step::End(WatchError::Closed);
        }
        Step::Idle { on_window: true }
    }

    /// Reads the window after `position` up to `limit`, skipping events that do not
    /// match; `Ok(None)` when caught up with the window or the limit.
    fn replay(&mut self, limit: u64) -> Result<Option<Event<T>>, WatchError> {
        let window = &self.cacher.window;
        while self.position < limit {
            match window.read(self.position + 1, &mut self.cursor) {
                Read::Record(record) => {
                    self.position = record.revision;
                    if let Some(event) = self.watcher.filter.event(record) {
                        return Ok(Some(event));
                    }
                }
                Read::Pending => return Ok(None),
                Read::Evicted { first } => {
                    return Err(WatchError::Expired { requested: self.position, oldest: first - 1 });
                }
            }
        }
        Ok(None)
    }

    /// The next pushed event not yet yielded (older ones were replayed from the window).
    fn pop(&mut self) -> Option<Event<T>> {
        let buffer = self.buffer.as_mut()?;
        loop {
            let event = buffer.pop()?;
            if self.cacher.config.policy == SlowWatcherPolicy::Terminate {
                self.watcher.room.wake();
            }
            if event.revision() > self.position {
                self.position = event.revision();
                return Some(event);
            }
        }
    }

    /// Leaves live dispatch and the counts; idempotent.
    fn release(&mut self) {
        if !self.watcher.mark_dropped() {
            return;
        }
        if self.watcher.is_pushed() {
            // The dispatcher may be waiting for room in this watcher's buffer.
            self.watcher.room.wake();
            self.cacher.send(Control::Stop(self.watcher.clone()));
        } else {
            self.cacher.counters.watchers_unindexed.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The next matching object of a snapshot start, as an `Added` event.
fn next_initial<T>(initial: &mut Initial<T>, watcher: &WatcherShared<T>) -> Option<Event<T>> {
    let snapshot = &initial.snapshot;
    let (key, object) = snapshot
        .range("", initial.last_key.as_deref())
        .find(|(key, object)| watcher.filter.matches(key, object))
        .map(|(key, object)| (key.clone(), object.clone()))?;
    initial.last_key = Some(key.clone());
    Some(Event::Added { key, object, revision: snapshot.revision })
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
        self.end.is_some()
    }
}

/// Blocking iteration over a watch by value; see [`Watch`].
#[derive(Debug)]
pub struct IntoIter<T>(Watch<T>);

impl<T> Iterator for IntoIter<T> {
    type Item = Item<T>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next_blocking(None)
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
        self.0.next_blocking(None)
    }
}

impl<'a, T> IntoIterator for &'a mut Watch<T> {
    type Item = Item<T>;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        Iter(self)
    }
}
