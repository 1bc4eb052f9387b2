//! What every handle, watch and the dispatcher share: the incoming ring's producing half,
//! the control queue to the dispatcher, the readable window and store, and the settings.
//!
//! The dispatcher owns the writing halves (the ring's receiver, the window and store
//! writers); everything here is the side the other threads see. The publishing half of
//! the ring is driven from `publish.rs`.

use crate::clock::Clock;
use crate::filter::TriggerFn;
use crate::hand_off::Control;
use crate::notify::{Parker, WaitList};
use crate::options::SlowWatcherPolicy;
use crate::publish::Message;
use crate::ready::{Readiness, ReadyState};
use crate::ring::Sender;
use crate::stats::Counters;
use crate::store::Store;
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::{lock, Arc, Mutex};
use crate::window::Window;
use std::time::Duration;

/// Writes a put's revision into its object, on the dispatcher, before anyone sees it.
pub(crate) type StampFn<T> = std::sync::Arc<dyn Fn(&mut T, u64) + Send + Sync>;

/// Whether two objects are the same, for a relist's difference (`T`'s `PartialEq`).
pub(crate) type SameFn<T> = fn(&T, &T) -> bool;

/// What the cacher knows how to do with a `T`, chosen on the builder.
pub(crate) struct ObjectFns<T> {
    pub(crate) trigger: Option<TriggerFn<T>>,
    pub(crate) stamp: Option<StampFn<T>>,
    /// `Some` for a cacher of an upstream.
    pub(crate) upstream: Option<SameFn<T>>,
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
    pub(crate) incoming: Sender<Message<T>>,
    /// Producers waiting for room in `incoming`.
    pub(crate) producers: WaitList,
    /// Wakes the dispatcher: new changes, control messages, shutdown.
    pub(crate) dispatcher: Parker,
    /// Messages for the dispatcher; `None` once it has stopped, so that nothing sent after
    /// that (a list's wait, whose reply would never come) is left waiting.
    control: Mutex<Option<Vec<Control<T>>>>,
    /// Whether `control` may hold messages; lets the dispatcher skip the lock.
    control_pending: AtomicBool,
    pub(crate) window: Arc<Window<T>>,
    pub(crate) store: Arc<Store<T>>,
    pub(crate) trigger: Option<TriggerFn<T>>,
    /// Writes each put's revision into its object; see `CacherBuilder::stamp_revision`.
    pub(crate) stamp: Option<StampFn<T>>,
    /// `Some` for a cacher of an upstream (`CacherBuilder::upstream`): how its relists
    /// tell an unchanged object.
    pub(crate) upstream: Option<SameFn<T>>,
    pub(crate) config: Config,
    /// `std`'s `Arc` even under loom: loom's cannot hold a trait object.
    pub(crate) clock: std::sync::Arc<dyn Clock>,
    pub(crate) ready: ReadyState,
    pub(crate) counters: Counters,
}

impl<T> Shared<T> {
    pub(crate) fn new(
        incoming: Sender<Message<T>>,
        (window, store): (Arc<Window<T>>, Arc<Store<T>>),
        ObjectFns { trigger, stamp, upstream }: ObjectFns<T>,
        config: Config,
        clock: std::sync::Arc<dyn Clock>,
        readiness: Readiness,
    ) -> Self {
        Self {
            incoming,
            producers: WaitList::new(),
            dispatcher: Parker::new(),
            control: Mutex::new(Some(Vec::new())),
            control_pending: AtomicBool::new(false),
            window,
            store,
            trigger,
            stamp,
            upstream,
            config,
            clock,
            ready: ReadyState::new(readiness),
            counters: Counters::default(),
        }
    }

    /// Queues `control` for the dispatcher; gives it back once the dispatcher has stopped.
    pub(crate) fn send(&self, control: Control<T>) -> Result<(), Control<T>> {
        match &mut *lock(&self.control) {
            Some(queue) => queue.push(control),
            None => return Err(control),
        }
        // Release: the dispatcher that sees the flag (Acquire swap) sees the message.
        self.control_pending.store(true, Ordering::Release);
        self.dispatcher.wake();
        Ok(())
    }

    pub(crate) fn has_control(&self) -> bool {
        self.control_pending.load(Ordering::Acquire)
    }

    pub(crate) fn take_control(&self) -> Vec<Control<T>> {
        if !self.control_pending.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        lock(&self.control).as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The dispatcher has stopped: later messages are refused, and queued ones dropped
    /// (which answers a waiting list).
    pub(crate) fn close_control(&self) {
        drop(lock(&self.control).take());
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
}
