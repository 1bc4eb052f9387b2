//! What every handle, watch and the dispatcher share: the incoming ring's producing half,
//! the control queue to the dispatcher, the readable window and store, and the settings.
//!
//! The dispatcher owns the writing halves (the ring's receiver, the window and store
//! writers); everything here is the side the other threads see.

use crate::clock::Clock;
use crate::dispatch::watcher::WatcherShared;
use crate::notify::{thread_waker, Parker, WaitList};
use crate::options::{SlowWatcherPolicy, TriggerFn};
use crate::ready::{Readiness, ReadyState};
use crate::ring::{PushError, Sender};
use crate::stats::Counters;
use crate::store::Store;
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::{lock, thread, Arc, Mutex};
use crate::window::Window;
use std::task::{Context, Poll};
use std::time::Duration;

/// Writes a put's revision into its object, on the dispatcher, before anyone sees it.
pub(crate) type StampFn<T> = std::sync::Arc<dyn Fn(&mut T, u64) + Send + Sync>;

/// How many times a blocked publish retries (spinning) before it parks.
const SPINS_BEFORE_PARK: u32 = 6;

/// A change on its way from a producer to the dispatcher.
pub(crate) enum Change<T> {
    Put {
        key: std::sync::Arc<str>,
        object: std::sync::Arc<T>,
    },
    Delete {
        key: std::sync::Arc<str>,
    },
    /// A put or delete applied only if its check passes (boxed: rare, and it keeps every
    /// ring slot small).
    Conditional(Box<Conditional<T>>),
    /// The initial state is loaded (sent by [`Loader::finish`](crate::Loader::finish)).
    Ready,
}

impl<T> Change<T> {
    /// The value inside a rejected put: the `Arc` was made by the rejecting call and never
    /// shared, so unwrapping it always succeeds.
    pub(crate) fn into_value(self) -> T {
        match self {
            Change::Put { object, .. } => match std::sync::Arc::try_unwrap(object) {
                Ok(value) => value,
                Err(_) => unreachable!("a rejected change's object is not shared"),
            },
            Change::Delete { .. } | Change::Conditional(_) | Change::Ready => {
                unreachable!("only puts carry a value")
            }
        }
    }
}

/// What a conditional change's caller hears back: the write, or the object the check
/// rejected (`None` for a missing key).
pub(crate) type Verdict<T> = Result<Written<T>, Option<std::sync::Arc<T>>>;

/// The check a conditional change runs against the key's current object.
pub(crate) type Check<T> = Box<dyn FnOnce(Option<&T>) -> bool + Send>;

/// A put (`object: Some`) or delete (`None`) that the dispatcher applies only if `check`
/// passes on the key's current object, deciding in order with every other change.
pub(crate) struct Conditional<T> {
    pub(crate) key: std::sync::Arc<str>,
    pub(crate) object: Option<std::sync::Arc<T>>,
    pub(crate) check: Check<T>,
    pub(crate) reply: futures_channel::oneshot::Sender<Verdict<T>>,
}

/// A conditional write that was applied; see [`Producer::put_if`](crate::Producer::put_if).
#[derive(Debug)]
#[non_exhaustive]
pub struct Written<T> {
    /// The revision the change got.
    pub revision: u64,
    /// The object as stored (after [`CacherBuilder::stamp_revision`](crate::CacherBuilder::stamp_revision));
    /// `None` for a delete.
    pub object: Option<std::sync::Arc<T>>,
    /// The object it replaced or deleted (`None` when a put created the key).
    pub prev: Option<std::sync::Arc<T>>,
}

/// A request from a watch to the dispatcher, handled between batches.
pub(crate) enum Control<T> {
    /// A new watch: index it (if indexed), schedule its bookmarks, time its wait.
    Start(Arc<WatcherShared<T>>),
    /// A parked watch caught up from the window and asks to rejoin live dispatch.
    Rejoin(Arc<WatcherShared<T>>),
    /// A watch ended or was dropped: take it out of the index.
    Stop(Arc<WatcherShared<T>>),
}

/// Settings fixed at build time.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) policy: SlowWatcherPolicy,
    pub(crate) watcher_buffer: Option<usize>,
    pub(crate) future_wait: Duration,
    pub(crate) bookmark_period: Duration,
    pub(crate) budget_refill_per_second: Duration,
    pub(crate) budget_max: Duration,
    pub(crate) batch_window: Duration,
}

impl Default for Config {
    /// Kubernetes' defaults, where it has one.
    fn default() -> Self {
        Self {
            policy: SlowWatcherPolicy::Park,
            watcher_buffer: None,
            future_wait: Duration::from_secs(3),
            bookmark_period: Duration::from_secs(60),
            budget_refill_per_second: Duration::from_millis(50),
            budget_max: Duration::from_millis(100),
            batch_window: Duration::ZERO,
        }
    }
}

/// What every handle, watch and the dispatcher share.
pub(crate) struct Shared<T> {
    pub(crate) incoming: Sender<Change<T>>,
    /// Producers waiting for room in `incoming`.
    pub(crate) producers: WaitList,
    /// Wakes the dispatcher: new changes, control messages, shutdown.
    pub(crate) dispatcher: Parker,
    control: Mutex<Vec<Control<T>>>,
    /// Whether `control` may hold messages; lets the dispatcher skip the lock.
    control_pending: AtomicBool,
    pub(crate) window: Arc<Window<T>>,
    pub(crate) store: Arc<Store<T>>,
    pub(crate) trigger: Option<TriggerFn<T>>,
    /// Writes each put's revision into its object; see `CacherBuilder::stamp_revision`.
    pub(crate) stamp: Option<StampFn<T>>,
    pub(crate) config: Config,
    /// `std`'s `Arc` even under loom: loom's cannot hold a trait object.
    pub(crate) clock: std::sync::Arc<dyn Clock>,
    pub(crate) ready: ReadyState,
    pub(crate) counters: Counters,
}

impl<T> Shared<T> {
    pub(crate) fn new(
        incoming: Sender<Change<T>>,
        (window, store): (Arc<Window<T>>, Arc<Store<T>>),
        (trigger, stamp): (Option<TriggerFn<T>>, Option<StampFn<T>>),
        config: Config,
        clock: std::sync::Arc<dyn Clock>,
        readiness: Readiness,
    ) -> Self {
        Self {
            incoming,
            producers: WaitList::new(),
            dispatcher: Parker::new(),
            control: Mutex::new(Vec::new()),
            control_pending: AtomicBool::new(false),
            window,
            store,
            trigger,
            stamp,
            config,
            clock,
            ready: ReadyState::new(readiness),
            counters: Counters::default(),
        }
    }

    pub(crate) fn send(&self, control: Control<T>) {
        lock(&self.control).push(control);
        // Release: the dispatcher that sees the flag (Acquire swap) sees the message.
        self.control_pending.store(true, Ordering::Release);
        self.dispatcher.wake();
    }

    pub(crate) fn has_control(&self) -> bool {
        self.control_pending.load(Ordering::Acquire)
    }

    pub(crate) fn take_control(&self) -> Vec<Control<T>> {
        if !self.control_pending.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut *lock(&self.control))
    }

    /// Closes the incoming ring and wakes the dispatcher, which applies what was accepted
    /// and stops. `interrupt`, not `wake`: a dispatcher gathering a batch sleeps unarmed.
    pub(crate) fn close(&self) {
        self.incoming.close();
        self.dispatcher.interrupt();
    }

    pub(crate) fn check_ready(&self) -> Result<(), Readiness> {
        match self.ready.get() {
            Readiness::Ready => Ok(()),
            other => Err(other),
        }
    }

    /// Publishes one change, spinning briefly and then parking the thread while the ring
    /// is full. The change comes back if the cacher has shut down.
    pub(crate) fn publish(&self, mut change: Change<T>) -> Result<(), Change<T>> {
        let mut spins = 0;
        let mut parker: Option<(Arc<Parker>, std::task::Waker)> = None;
        loop {
            match self.try_publish(change) {
                Ok(()) => return Ok(()),
                Err(PushError::Closed(rejected)) => return Err(rejected),
                Err(PushError::Full(rejected)) => change = rejected,
            }
            if spins < SPINS_BEFORE_PARK {
                spins += 1;
                for _ in 0..1 << spins {
                    std::hint::spin_loop();
                }
                continue;
            }
            let (parker, waker) = &*parker.get_or_insert_with(|| (Arc::new(Parker::new()), thread_waker()));
            self.producers.arm(parker, waker);
            if self.incoming.len() >= self.incoming.capacity() && !self.incoming.is_closed() {
                thread::park();
            }
        }
    }

    /// One attempt of an async publish: takes `change` out of its slot when the ring
    /// accepts it (or gives it back as `Err` after shutdown); otherwise leaves it there,
    /// registers the task to be woken when room appears, and returns `Pending`.
    ///
    /// Cancel-safe by construction: a change is either in the ring or still in `slot`,
    /// so dropping the future that owns the slot publishes nothing.
    pub(crate) fn poll_publish(
        &self,
        slot: &mut Option<Change<T>>,
        parker: &mut Option<Arc<Parker>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Change<T>>> {
        let mut armed = false;
        loop {
            let change = slot.take().expect("polled after completion");
            match self.try_publish(change) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(PushError::Closed(rejected)) => return Poll::Ready(Err(rejected)),
                Err(PushError::Full(rejected)) => *slot = Some(rejected),
            }
            if armed {
                return Poll::Pending;
            }
            // Arm, then try once more: a dispatcher that frees room after the arm wakes
            // the task; one that freed it before is seen by the retry.
            let parker = parker.get_or_insert_with(|| Arc::new(Parker::new()));
            self.producers.arm(parker, cx.waker());
            armed = true;
        }
    }

    pub(crate) fn try_publish(&self, change: Change<T>) -> Result<(), PushError<Change<T>>> {
        self.incoming.push(change)?;
        self.dispatcher.wake();
        Ok(())
    }
}
