//! The consuming end of a watch; its semantics are documented on [`Watch`].

use crate::cacher::{Control, Shared};
use crate::dispatch::watcher::{Phase, WatcherShared};
use crate::error::WatchError;
use crate::event::Event;
use crate::notify::thread_waker;
use crate::options::{SlowWatcherPolicy, Start, WatchOptions};
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
/// then ends with one `Err` item that says why and where to resume, then `None`.
///
/// - **Lagging.** An unindexed watch reads the window at its own pace; under
///   `Terminate` it may fall at most its buffer size behind once it has caught up, under
///   `Park` as far as the window reaches. An indexed watch gets pushed events into its
///   buffer; when the buffer is full the dispatcher parks it (it catches up from the
///   window and rejoins, unseen by the consumer) or, under `Terminate`, waits out of its
///   budget and terminates it. Either way the stream has no gap: a watch that can no
///   longer continue ends with `Expired` (fell out of the window) or `TooSlow`.
/// - **Closing.** After shutdown a watch yields everything the cacher applied that
///   matches, then `Err(Closed)`. Dropping a watch is a deferred stop: the dispatcher
///   stops offering to it and removes it between events.
///
/// Consume it as a `futures_core::Stream` in async code, or by iterating (`for item in
/// &mut watch`) in threads; [`Watch::try_next`] never blocks and
/// [`Watch::next_timeout`] waits at most a given time.
pub struct Watch<T> {
    watcher: Arc<WatcherShared<T>>,
    cacher: Arc<Shared<T>>,
    /// Every matching event up to this revision has been yielded.
    position: u64,
    cursor: Cursor<T>,
    initial: Option<Initial<T>>,
    /// An unindexed watch has caught up with the window at least once; from then on its
    /// lag is bounded under `Terminate`.
    caught_up: bool,
    /// Under `Terminate`, an unindexed watch that fell too far behind yields up to this
    /// revision, then `TooSlow`.
    cutoff: Option<u64>,
    ended: bool,
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
        let (position, initial, awaits) = match options.start {
            Start::Now => (window.head(), None, 0),
            Start::Revision(requested) => {
                let oldest = window.first() - 1;
                if requested < oldest {
                    return Err(WatchError::Expired { requested, oldest });
                }
                let awaits = if requested > window.head() { requested } else { 0 };
                (requested, None, awaits)
            }
            Start::Snapshot => {
                let snapshot = cacher.store.snapshot();
                (snapshot.revision, Some(Initial { snapshot, last_key: None }), 0)
            }
        };
        let started_at = cacher.clock.now();
        let watcher = Arc::new(WatcherShared::new(
            filter,
            indexed,
            buffer_len,
            options.bookmarks,
            (awaits, started_at),
        ));
        if indexed || options.bookmarks || awaits > 0 {
            cacher.send(Control::Start(watcher.clone()));
        }
        if !indexed {
            cacher.counters.watchers_unindexed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Self {
            watcher,
            cacher,
            position,
            cursor: Cursor::new(),
            initial,
            caught_up: false,
            cutoff: None,
            ended: false,
            blocking: None,
        })
    }
}

impl<T> Watch<T> {
    /// The next item if one is ready now; `None` means nothing yet (or the watch ended).
    /// Never blocks.
    pub fn try_next(&mut self) -> Option<Item<T>> {
        match self.poll_item(None) {
            Poll::Ready(item) => item,
            Poll::Pending => None,
        }
    }

    /// The next item, waiting at most `timeout`; `None` means nothing arrived in time
    /// (or the watch ended).
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Item<T>> {
        self.next_blocking(Some(timeout))
    }

    /// How many revisions this watch is behind the cacher's latest.
    pub fn lag(&self) -> u64 {
        self.cacher.window.head().saturating_sub(self.position)
    }

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

    /// One attempt to produce an item. With a waker, arms the wake-up before the last
    /// re-check, so `Pending` always has a wake-up coming.
    fn poll_item(&mut self, waker: Option<&Waker>) -> Poll<Option<Item<T>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let mut armed = false;
        loop {
            match self.step() {
                Step::Yield(event) => return Poll::Ready(Some(Ok(event))),
                Step::End(error) => {
                    self.ended = true;
                    self.release();
                    return Poll::Ready(Some(Err(error)));
                }
                Step::Idle { on_window } => {
                    let Some(waker) = waker.filter(|_| !armed) else { return Poll::Pending };
                    if on_window {
                        self.cacher.window.waiters.arm(&self.watcher.consumer, waker);
                    } else {
                        self.watcher.consumer.arm(waker);
                    }
                    armed = true;
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
        let awaits = self.watcher.awaits;
        let window = &self.cacher.window;
        if awaits > window.head() {
            if let Some(current) = self.watcher.timed_out_at() {
                return Step::End(WatchError::TooNew { requested: awaits, current });
            }
            if window.is_closed() {
                return Step::End(WatchError::Closed);
            }
            // Anything pushed so far is at or below the awaited revision: not for us.
            while self.pop().is_some() {}
            return Step::Idle { on_window: true };
        }
        if self.watcher.buffer.is_some() {
            self.step_indexed()
        } else {
            self.step_unindexed()
        }
    }

    fn step_unindexed(&mut self) -> Step<T> {
        // Saturating: a reader may see a record through its chunk before the window's
        // `head` moves past it, so `position` can be ahead of the `head` it loads.
        let lag = self.cacher.window.head().saturating_sub(self.position);
        if self.cacher.config.policy == SlowWatcherPolicy::Terminate
            && self.caught_up
            && self.cutoff.is_none()
            && lag > self.watcher.buffer_len as u64
        {
            self.cutoff = Some(self.position + self.watcher.buffer_len as u64);
        }
        if let Some(step) = self.replay_step(self.cutoff.unwrap_or(u64::MAX)) {
            return step;
        }
        if let Some(resume_from) = self.cutoff.filter(|cutoff| self.position >= *cutoff) {
            crate::stats::Counters::add(&self.cacher.counters.terminations);
            return Step::End(WatchError::TooSlow { resume_from });
        }
        self.caught_up = true;
        self.idle_on_window()
    }

    fn step_indexed(&mut self) -> Step<T> {
        loop {
            let phase = self.watcher.phase.load();
            match phase {
                Phase::Joining => return self.replay_step(u64::MAX).unwrap_or_else(|| self.idle_on_window()),
                Phase::Live => return self.drain_joined().unwrap_or_else(|| self.idle_live()),
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
                    if self.watcher.phase.transition(phase, Phase::Joining) {
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
    /// push.
    fn idle_live(&mut self) -> Step<T> {
        let due = self.watcher.due_bookmark();
        let closed = self.cacher.window.is_closed();
        // Pushes made before the bookmark or the close are visible now: look once more.
        if let Some(event) = self.pop() {
            return Step::Yield(event);
        }
        if let Some(due) = due.filter(|due| self.watcher.take_bookmark(*due)) {
            self.position = self.position.max(due);
            return Step::Yield(Event::Bookmark { revision: self.position, initial_events_end: false });
        }
        if closed {
            self.position = self.position.max(self.cacher.window.head());
            return Step::End(WatchError::Closed);
        }
        Step::Idle { on_window: false }
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
        let buffer = self.watcher.buffer.as_ref()?;
        loop {
            // SAFETY: the watch is its buffer's only consumer, and `&mut self` keeps this
            // call from overlapping another.
            let event = unsafe { buffer.pop() }?;
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
        if self.watcher.dropped.swap(true, Ordering::AcqRel) {
            return;
        }
        if self.watcher.buffer.is_some() {
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
            .field("indexed", &self.watcher.buffer.is_some())
            .field("ended", &self.ended)
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
        self.ended
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
