//! The writing handles and the path a change takes into the incoming ring.
//!
//! In embedded mode the cacher numbers changes itself: any number of [`Producer`]s
//! publish, and a [`Loader`] fills a pending cacher's initial state. A cacher of an
//! upstream store (etcd, another log) takes the upstream's revisions instead, through its
//! one [`Upstream`] handle. Every publish is one [`Message`] pushed into the ring, parking
//! the thread (or, async, registering the task) while it is full; the dispatcher applies
//! messages in ring order, one whole message at a time.

use crate::error::{ConditionalError, PublishError, TryPublishError, UpstreamError};
use crate::notify::{thread_waker, Parker};
use crate::ring::PushError;
use crate::shared::Shared;
use crate::sync::{thread, Arc};
#[cfg(doc)]
use crate::{Cacher, CacherBuilder, Readiness, Stats};
use std::fmt;
use std::task::{Context, Poll};

/// A relist's state as it comes back when refused.
type RejectedState<T> = UpstreamError<Vec<(std::sync::Arc<str>, T)>>;

/// What the incoming ring carries to the dispatcher.
pub(crate) enum Message<T> {
    /// Embedded mode: a put at the next revision.
    Put { key: std::sync::Arc<str>, object: std::sync::Arc<T> },
    /// Embedded mode: a delete at the next revision.
    Delete { key: std::sync::Arc<str> },
    /// A put or delete applied only if its check passes (boxed: rare, and it keeps every
    /// ring slot small).
    Conditional(Box<Conditional<T>>),
    /// The initial state is loaded (sent by [`Loader::finish`]).
    Ready,
    /// Upstream mode: one change, a revision of its own (`object: None` deletes).
    Change { revision: u64, key: std::sync::Arc<str>, object: Option<std::sync::Arc<T>> },
    /// Upstream mode: several changes at one revision.
    Transaction(Box<Transaction<T>>),
    /// Upstream mode: nothing more up to this revision.
    Progress(u64),
    /// Upstream mode: the whole state at a revision (the first one loads the cacher).
    Relist(Box<Relist<T>>),
}

/// Several changes an upstream made at one revision.
pub(crate) struct Transaction<T> {
    pub(crate) revision: u64,
    /// `None` deletes.
    pub(crate) changes: Vec<(std::sync::Arc<str>, Option<std::sync::Arc<T>>)>,
}

/// An upstream's whole state at a revision, sorted by key, each key once.
pub(crate) struct Relist<T> {
    pub(crate) revision: u64,
    pub(crate) state: Vec<(std::sync::Arc<str>, std::sync::Arc<T>)>,
}

/// The value of an `Arc` this crate made for a message and never shared.
fn unshared<T>(object: std::sync::Arc<T>) -> T {
    match std::sync::Arc::try_unwrap(object) {
        Ok(value) => value,
        Err(_) => unreachable!("a rejected message's object is not shared"),
    }
}

impl<T> Message<T> {
    /// The value inside a rejected put.
    fn into_put_value(self) -> T {
        match self {
            Message::Put { object, .. } => unshared(object),
            _ => unreachable!("only puts carry a value"),
        }
    }

    /// The changes inside a rejected upstream `apply`.
    fn into_changes(self) -> Vec<Change<T>> {
        let change = |key, object: Option<std::sync::Arc<T>>| match object {
            Some(object) => Change::Put { key, object: unshared(object) },
            None => Change::Delete { key },
        };
        match self {
            Message::Change { key, object, .. } => vec![change(key, object)],
            Message::Transaction(transaction) => {
                transaction.changes.into_iter().map(|(key, object)| change(key, object)).collect()
            }
            Message::Progress(_) => Vec::new(),
            _ => unreachable!("only an apply's messages carry changes"),
        }
    }

    /// The state inside a rejected relist.
    fn into_state(self) -> Vec<(std::sync::Arc<str>, T)> {
        match self {
            Message::Relist(relist) => {
                relist.state.into_iter().map(|(key, object)| (key, unshared(object))).collect()
            }
            _ => unreachable!("only a relist carries a state"),
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

/// A conditional write that was applied; see [`Producer::put_if`].
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

impl<T> Shared<T> {
    /// Publishes one message, parking the thread while the ring is full. The message comes
    /// back if the cacher has shut down.
    ///
    /// A full ring means the dispatcher is a whole ring of messages behind, and it wakes
    /// parked producers once it has drained the ring to half, so that each wake-up buys
    /// half a ring of publishes rather than one batch. A producer that spun for the first
    /// free slot instead would take slots one at a time, in step with the dispatcher,
    /// polling the very slot the dispatcher reads next, and on a small machine it would
    /// take a core from the dispatcher it waits for.
    pub(crate) fn publish(&self, mut message: Message<T>) -> Result<(), Message<T>> {
        let mut parker: Option<(Arc<Parker>, std::task::Waker)> = None;
        loop {
            match self.try_publish(message) {
                Ok(()) => return Ok(()),
                Err(PushError::Closed(rejected)) => return Err(rejected),
                Err(PushError::Full(rejected)) => message = rejected,
            }
            let (parker, waker) = &*parker.get_or_insert_with(|| (Arc::new(Parker::new()), thread_waker()));
            self.producers.arm(parker, waker);
            if self.incoming.len() >= self.incoming.capacity() && !self.incoming.is_closed() {
                thread::park();
            }
        }
    }

    /// [`Self::publish`] in a task: waits without blocking the thread; cancel-safe.
    pub(crate) async fn publish_async(&self, message: Message<T>) -> Result<(), Message<T>> {
        let mut slot = Some(message);
        let mut parker = None;
        std::future::poll_fn(|cx| self.poll_publish(&mut slot, &mut parker, cx)).await
    }

    /// One attempt of an async publish: takes the message out of its slot when the ring
    /// accepts it (or gives it back as `Err` after shutdown); otherwise leaves it there,
    /// registers the task to be woken when room appears, and returns `Pending`.
    ///
    /// Cancel-safe by construction: a message is either in the ring or still in `slot`,
    /// so dropping the future that owns the slot publishes nothing.
    fn poll_publish(
        &self,
        slot: &mut Option<Message<T>>,
        parker: &mut Option<Arc<Parker>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Message<T>>> {
        let mut armed = false;
        loop {
            let message = slot.take().expect("polled after completion");
            match self.try_publish(message) {
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

    pub(crate) fn try_publish(&self, message: Message<T>) -> Result<(), PushError<Message<T>>> {
        self.incoming.push(message)?;
        self.dispatcher.wake();
        Ok(())
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
/// A waiting form that finds the ring full waits until the dispatcher has drained it to
/// half ([`CacherBuilder::incoming_capacity`](crate::CacherBuilder::incoming_capacity)),
/// so that one wake-up lets it publish half a ring of changes.
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

fn put_message<T>(key: impl Into<std::sync::Arc<str>>, value: T) -> Message<T> {
    Message::Put { key: key.into(), object: std::sync::Arc::new(value) }
}

fn delete_message<T>(key: impl Into<std::sync::Arc<str>>) -> Message<T> {
    Message::Delete { key: key.into() }
}

impl<T> Producer<T> {
    pub(crate) fn new(shared: Arc<Shared<T>>) -> Self {
        Self { shared }
    }

    /// Sets `key` to `value`, parking the thread while the incoming ring is full.
    ///
    /// # Errors
    /// The cacher has shut down; the value comes back.
    pub fn put(&self, key: impl Into<std::sync::Arc<str>>, value: T) -> Result<(), PublishError<T>> {
        self.shared
            .publish(put_message(key, value))
            .map_err(|rejected| PublishError(rejected.into_put_value()))
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
        self.shared
            .publish_async(put_message(key, value))
            .await
            .map_err(|rejected| PublishError(rejected.into_put_value()))
    }

    /// Sets `key` to `value` if the incoming ring has room now.
    ///
    /// # Errors
    /// `Full` when the ring is full, `Closed` after shutdown; both carry the value.
    pub fn try_put(&self, key: impl Into<std::sync::Arc<str>>, value: T) -> Result<(), TryPublishError<T>> {
        self.shared.try_publish(put_message(key, value)).map_err(|error| match error {
            PushError::Full(rejected) => TryPublishError::Full(rejected.into_put_value()),
            PushError::Closed(rejected) => TryPublishError::Closed(rejected.into_put_value()),
        })
    }

    /// Deletes `key`, parking the thread while the incoming ring is full. A key that is
    /// missing when the dispatcher applies the delete emits nothing (it is counted in
    /// [`Stats::deletes_of_missing_keys`]).
    ///
    /// # Errors
    /// The cacher has shut down.
    pub fn delete(&self, key: impl Into<std::sync::Arc<str>>) -> Result<(), PublishError<()>> {
        self.shared.publish(delete_message(key)).map_err(|_| PublishError(()))
    }

    /// Deletes `key`, waiting without blocking the thread while the incoming ring is
    /// full; see [`Producer::delete`].
    ///
    /// Cancel-safe: dropping the future before it completes publishes nothing.
    ///
    /// # Errors
    /// The cacher has shut down.
    pub async fn delete_async(&self, key: impl Into<std::sync::Arc<str>>) -> Result<(), PublishError<()>> {
        self.shared.publish_async(delete_message(key)).await.map_err(|_| PublishError(()))
    }

    /// Deletes `key` if the incoming ring has room now.
    ///
    /// # Errors
    /// `Full` when the ring is full, `Closed` after shutdown.
    pub fn try_delete(&self, key: impl Into<std::sync::Arc<str>>) -> Result<(), TryPublishError<()>> {
        self.shared.try_publish(delete_message(key)).map_err(|error| match error {
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
        let message = Message::Conditional(Box::new(Conditional { key, object, check, reply }));
        self.shared.publish_async(message).await.map_err(|_| ConditionalError::Closed)?;
        match verdict.await {
            Ok(Ok(written)) => Ok(written),
            Ok(Err(current)) => Err(ConditionalError::Rejected { current }),
            // The dispatcher stopped without applying it (a panic in user code).
            Err(futures_channel::oneshot::Canceled) => Err(ConditionalError::Closed),
        }
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
    pub(crate) fn new(producer: Producer<T>) -> Self {
        Self { producer }
    }

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
        self.producer.shared.publish(Message::Ready).map_err(|_| PublishError(()))
    }
}

/// One change an upstream made, as [`Upstream::apply`] takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<T> {
    /// `key` now holds `object`.
    Put {
        /// The key.
        key: std::sync::Arc<str>,
        /// Its new object.
        object: T,
    },
    /// `key` was deleted (a key the cacher does not hold is ignored and counted in
    /// [`Stats::deletes_of_missing_keys`](crate::Stats::deletes_of_missing_keys)).
    Delete {
        /// The key.
        key: std::sync::Arc<str>,
    },
}

impl<T> Change<T> {
    /// A put of `object` at `key`.
    pub fn put(key: impl Into<std::sync::Arc<str>>, object: T) -> Self {
        Self::Put { key: key.into(), object }
    }

    /// A delete of `key`.
    pub fn delete(key: impl Into<std::sync::Arc<str>>) -> Self {
        Self::Delete { key: key.into() }
    }

    fn into_parts(self) -> (std::sync::Arc<str>, Option<std::sync::Arc<T>>) {
        match self {
            Self::Put { key, object } => (key, Some(std::sync::Arc::new(object))),
            Self::Delete { key } => (key, None),
        }
    }
}

/// The one writer of a cacher that follows an upstream store (etcd, or any log that
/// numbers its own changes): it passes on the upstream's changes at the upstream's
/// revisions, its progress, and its whole state after a break. Made by
/// [`CacherBuilder::upstream`](crate::CacherBuilder::upstream); not `Clone`, and every
/// call takes `&mut self`, since the order of calls is the order of the upstream.
///
/// # Revisions
///
/// Revisions are the upstream's: they increase, but may skip any number (a watch of
/// one key prefix sees only its own keys), and several changes may share one (a
/// transaction), which are delivered together: a watch resumed after revision `r` gets
/// everything after all of `r`. The first call must be [`Upstream::relist`], the state
/// to start from; it makes the cacher ready, and watches may start after its revision.
///
/// # Relists and open watches
///
/// When the upstream's own watch breaks (a compaction, a lost leader), pass its whole
/// state at a newer revision `R` to [`Upstream::relist`]. The dispatcher compares it
/// with the current state (by `T`'s `PartialEq`) and delivers the difference as ordinary
/// `Added` / `Modified` / `Deleted` events at revision `R`, in key order, to every open
/// watch whose filter they concern — indexed or not, live, parked or catching up. No
/// watch is closed: each ends equal to the new state, as the Kubernetes Cacher's
/// clients end only after relisting themselves. The window records the difference like
/// any revision, so a watch resuming from before the relist gets the same difference
/// instead of `Expired`, while the window holds it (the window never evicts part of its
/// newest revision). What a watch sees is exact between relists and the net difference
/// across one; a watch from a revision inside a relist's gap (after the revision the
/// cacher had before the relist, before `R`) gets the difference from that earlier
/// revision, which may repeat changes of the gap it saw elsewhere. A relist's
/// difference never ends a watch for being slow: under
/// [`SlowWatcherPolicy::Terminate`](crate::SlowWatcherPolicy::Terminate) a watch too full
/// for it is parked instead, and it does not count toward an unindexed watch's lag.
///
/// ```
/// use watchcache::{At, Cacher, Change, Event, ListOptions, Start, WatchOptions};
///
/// let (cacher, mut upstream) = Cacher::<String>::builder().upstream();
/// upstream.relist(100, [("a", "one".to_string()), ("b", "two".to_string())]).unwrap();
/// // Applied in order with everything else; a list at its revision waits for it.
/// assert_eq!(cacher.list(ListOptions::new().at(At::AtLeast(100))).unwrap().items.len(), 2);
/// let mut watch = cacher.watch(WatchOptions::new().start(Start::Revision(100))).unwrap();
///
/// // An etcd transaction at revision 105, then a break and a relist at 130.
/// upstream.apply(105, [Change::put("a", "uno".to_string()), Change::delete("b")]).unwrap();
/// upstream.relist(130, [("a", "uno".to_string()), ("c", "three".to_string())]).unwrap();
///
/// let seen: Vec<_> = (0..3).map(|_| {
///     let event = watch.recv().unwrap();
///     (event.key().unwrap().to_string(), event.revision(), matches!(event, Event::Added { .. }))
/// }).collect();
/// assert_eq!(seen, [("a".into(), 105, false), ("b".into(), 105, false), ("c".into(), 130, true)]);
/// assert_eq!(cacher.list(ListOptions::new().at(At::AtLeast(130))).unwrap().items.len(), 2);
/// ```
pub struct Upstream<T> {
    shared: Arc<Shared<T>>,
    /// The last revision sent; `None` until the first relist.
    last: Option<u64>,
}

impl<T> fmt::Debug for Upstream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream").field("last", &self.last).finish_non_exhaustive()
    }
}

/// How a call waits for room in the incoming ring.
enum Wait {
    /// Not at all: `Full` when there is none.
    Never,
    /// On the thread.
    Thread,
}

impl<T> Upstream<T> {
    pub(crate) fn new(shared: Arc<Shared<T>>) -> Self {
        Self { shared, last: None }
    }

    /// The last revision passed on (applied, reported as progress or relisted); `None`
    /// before the first relist.
    pub fn revision(&self) -> Option<u64> {
        self.last
    }

    /// The changes the upstream made at `revision`, applied together; waits while the
    /// incoming ring is full. No changes reports progress to `revision`.
    ///
    /// # Errors
    /// `OutOfOrder` when `revision` is not after the last one, `NotLoaded` before the
    /// first relist, `Closed` after shutdown; the changes come back.
    pub fn apply(
        &mut self,
        revision: u64,
        changes: impl IntoIterator<Item = Change<T>>,
    ) -> Result<(), UpstreamError<Vec<Change<T>>>> {
        let message = self.apply_message(revision, changes)?;
        self.send(message, revision, Wait::Thread).map_err(|error| error.map(Message::into_changes))
    }

    /// [`Upstream::apply`] in a task: waits without blocking the thread. Cancel-safe:
    /// dropping the future before it completes applies nothing.
    ///
    /// # Errors
    /// As [`Upstream::apply`].
    pub async fn apply_async(
        &mut self,
        revision: u64,
        changes: impl IntoIterator<Item = Change<T>>,
    ) -> Result<(), UpstreamError<Vec<Change<T>>>> {
        let message = self.apply_message(revision, changes)?;
        self.send_async(message, revision).await.map_err(|error| error.map(Message::into_changes))
    }

    /// [`Upstream::apply`] if the incoming ring has room now.
    ///
    /// # Errors
    /// As [`Upstream::apply`], and `Full` when the ring is full.
    pub fn try_apply(
        &mut self,
        revision: u64,
        changes: impl IntoIterator<Item = Change<T>>,
    ) -> Result<(), UpstreamError<Vec<Change<T>>>> {
        let message = self.apply_message(revision, changes)?;
        self.send(message, revision, Wait::Never).map_err(|error| error.map(Message::into_changes))
    }

    /// The upstream has nothing more up to `revision` (etcd's progress notification): the
    /// cacher's revision moves there with no event, so bookmarks, waiting lists and
    /// watches from `revision` see it. Waits while the incoming ring is full.
    ///
    /// # Errors
    /// `OutOfOrder` when `revision` is older than the last one, `NotLoaded` before the
    /// first relist, `Closed` after shutdown.
    pub fn progress(&mut self, revision: u64) -> Result<(), UpstreamError<()>> {
        match self.progress_message(revision)? {
            Some(message) => self.send(message, revision, Wait::Thread).map_err(|error| error.map(drop)),
            None => Ok(()),
        }
    }

    /// [`Upstream::progress`] in a task: waits without blocking the thread.
    ///
    /// # Errors
    /// As [`Upstream::progress`].
    pub async fn progress_async(&mut self, revision: u64) -> Result<(), UpstreamError<()>> {
        match self.progress_message(revision)? {
            Some(message) => self.send_async(message, revision).await.map_err(|error| error.map(drop)),
            None => Ok(()),
        }
    }

    /// [`Upstream::progress`] if the incoming ring has room now.
    ///
    /// # Errors
    /// As [`Upstream::progress`], and `Full` when the ring is full.
    pub fn try_progress(&mut self, revision: u64) -> Result<(), UpstreamError<()>> {
        match self.progress_message(revision)? {
            Some(message) => self.send(message, revision, Wait::Never).map_err(|error| error.map(drop)),
            None => Ok(()),
        }
    }

    /// The upstream's complete state at `revision`: the first call loads the cacher (and
    /// makes it ready); a later one, after the upstream's watch broke, delivers the
    /// difference to open watches without closing any (see [the type's
    /// docs](Upstream#relists-and-open-watches)). Waits while the incoming ring is full.
    /// Sorting the state happens here, on the caller's thread.
    ///
    /// # Errors
    /// `OutOfOrder` when `revision` is older than the last one, `DuplicateKey` when the
    /// state names a key twice, `Closed` after shutdown; the state comes back.
    pub fn relist<K: Into<std::sync::Arc<str>>>(
        &mut self,
        revision: u64,
        state: impl IntoIterator<Item = (K, T)>,
    ) -> Result<(), RejectedState<T>> {
        let message = self.relist_message(revision, state)?;
        self.send(message, revision, Wait::Thread).map_err(|error| error.map(Message::into_state))
    }

    /// [`Upstream::relist`] in a task: waits without blocking the thread. Cancel-safe.
    ///
    /// # Errors
    /// As [`Upstream::relist`].
    pub async fn relist_async<K: Into<std::sync::Arc<str>>>(
        &mut self,
        revision: u64,
        state: impl IntoIterator<Item = (K, T)>,
    ) -> Result<(), RejectedState<T>> {
        let message = self.relist_message(revision, state)?;
        self.send_async(message, revision).await.map_err(|error| error.map(Message::into_state))
    }

    /// [`Upstream::relist`] if the incoming ring has room now.
    ///
    /// # Errors
    /// As [`Upstream::relist`], and `Full` when the ring is full.
    pub fn try_relist<K: Into<std::sync::Arc<str>>>(
        &mut self,
        revision: u64,
        state: impl IntoIterator<Item = (K, T)>,
    ) -> Result<(), RejectedState<T>> {
        let message = self.relist_message(revision, state)?;
        self.send(message, revision, Wait::Never).map_err(|error| error.map(Message::into_state))
    }

    /// The message for an apply, or why there is none. One change travels unboxed.
    fn apply_message(
        &self,
        revision: u64,
        changes: impl IntoIterator<Item = Change<T>>,
    ) -> Result<Message<T>, UpstreamError<Vec<Change<T>>>> {
        let mut changes = changes.into_iter();
        let first = changes.next();
        let message = match (first, changes.next()) {
            (None, _) => Message::Progress(revision),
            (Some(only), None) => {
                let (key, object) = only.into_parts();
                Message::Change { revision, key, object }
            }
            (Some(first), Some(second)) => {
                let changes = [first, second].into_iter().chain(changes).map(Change::into_parts).collect();
                Message::Transaction(Box::new(Transaction { revision, changes }))
            }
        };
        match self.last {
            None => Err(UpstreamError::NotLoaded(message.into_changes())),
            Some(last) if revision <= last => {
                Err(UpstreamError::OutOfOrder { revision, last, rejected: message.into_changes() })
            }
            Some(_) => Ok(message),
        }
    }

    /// The message for a progress report; `None` when it reports nothing new.
    fn progress_message(&self, revision: u64) -> Result<Option<Message<T>>, UpstreamError<()>> {
        match self.last {
            None => Err(UpstreamError::NotLoaded(())),
            Some(last) if revision < last => Err(UpstreamError::OutOfOrder { revision, last, rejected: () }),
            Some(last) if revision == last => Ok(None),
            Some(_) => Ok(Some(Message::Progress(revision))),
        }
    }

    /// The message for a relist: the state sorted by key, each key once.
    fn relist_message<K: Into<std::sync::Arc<str>>>(
        &self,
        revision: u64,
        state: impl IntoIterator<Item = (K, T)>,
    ) -> Result<Message<T>, RejectedState<T>> {
        let mut state: Vec<_> =
            state.into_iter().map(|(key, object)| (key.into(), std::sync::Arc::new(object))).collect();
        state.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        let duplicate = state.windows(2).find(|pair| pair[0].0 == pair[1].0).map(|pair| pair[0].0.clone());
        let message = Message::Relist(Box::new(Relist { revision, state }));
        if let Some(key) = duplicate {
            return Err(UpstreamError::DuplicateKey { key, rejected: message.into_state() });
        }
        match self.last {
            Some(last) if revision < last => {
                Err(UpstreamError::OutOfOrder { revision, last, rejected: message.into_state() })
            }
            _ => Ok(message),
        }
    }

    fn send(
        &mut self,
        message: Message<T>,
        revision: u64,
        wait: Wait,
    ) -> Result<(), UpstreamError<Message<T>>> {
        match wait {
            Wait::Thread => self.shared.publish(message).map_err(UpstreamError::Closed)?,
            Wait::Never => self.shared.try_publish(message).map_err(|error| match error {
                PushError::Full(rejected) => UpstreamError::Full(rejected),
                PushError::Closed(rejected) => UpstreamError::Closed(rejected),
            })?,
        }
        self.last = Some(revision);
        Ok(())
    }

    async fn send_async(
        &mut self,
        message: Message<T>,
        revision: u64,
    ) -> Result<(), UpstreamError<Message<T>>> {
        self.shared.publish_async(message).await.map_err(UpstreamError::Closed)?;
        self.last = Some(revision);
        Ok(())
    }
}
