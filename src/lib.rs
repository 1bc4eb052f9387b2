//! An embeddable, lock-free watch cache for keyed, versioned state: the Kubernetes API
//! server's watch cache ("Cacher"), as a library for any `T`.
//!
//! Changes come in through a bounded ring. One dispatcher thread per [`Cacher`] orders
//! them, keeps the current state ([`Cacher::get`], [`Cacher::list`]) and a sliding window
//! of recent events, and fans each event out to watchers ([`Cacher::watch`]), each
//! filtered by key prefix, an indexed trigger value and a predicate.
//!
//! # Two modes
//!
//! - **Embedded** (the default, [`CacherBuilder::build`]): the cacher is the source of
//!   truth and numbers changes itself. Any number of [`Producer`]s publish
//!   ([`Producer::put`], [`Producer::delete`], conditional writes).
//! - **Upstream** ([`CacherBuilder::upstream`]): the cacher caches a store that numbers
//!   its own changes, as Kubernetes' cacher caches etcd. Its one [`Upstream`] handle
//!   passes on the upstream's changes at the upstream's revisions, its progress, and,
//!   after the upstream's watch broke, its whole state ([`Upstream::relist`]), which is
//!   delivered to open watches as a difference instead of closing them.
//!
//! Both share one dispatcher, one window and one store; everything below holds for both.
//!
//! # Guarantees
//!
//! 1. **Total order.** Every change gets a revision. Embedded: strictly increasing by one;
//!    each producer's changes are applied in the order it published them. Upstream: the
//!    upstream's, increasing but possibly sparse, several changes of one transaction
//!    sharing a revision and delivered together (a watch never ends partway through one,
//!    except `Expired`).
//! 2. **Exactly once, in order, or a resumable error.** A watch yields every matching
//!    event in revision order with no gap and no duplicate, or ends with an error naming
//!    the revision to resume from ([`WatchError::Expired`], [`WatchError::TooSlow`]).
//!    Across an upstream relist a watch gets the net difference and is not closed: what it
//!    sees is exact between relists and the net difference across one (see [`Upstream`]).
//! 3. **Isolation.** A watcher that stops reading costs the others at most the dispatch
//!    budget under [`SlowWatcherPolicy::Terminate`], and nothing under the default
//!    [`SlowWatcherPolicy::Park`]. Unindexed watchers read the window on their own
//!    threads and never hold up the dispatcher.
//! 4. **No loss on overload.** A full ring makes `put` wait (`put_async` waits without
//!    blocking the thread; `try_put` returns [`TryPublishError::Full`] with the value); a
//!    change is never discarded.
//!
//! # Semantics
//!
//! `put` of a missing key is an `Added` event, of a present key `Modified`; a `delete`
//! of a key missing when applied is dropped and counted in [`Stats`]. Per watcher, with
//! the object before and after a change: matches after only → `Added`; both →
//! `Modified`; before only → `Deleted` (with the last matching state); neither →
//! nothing. A watch starts [`Start::Now`], after a [`Start::Revision`] (any revision,
//! recorded or skipped by a sparse upstream), or from a [`Start::Snapshot`] (initial
//! `Added` events, then a bookmark with `initial_events_end`, then live).
//!
//! # Publishing and receiving
//!
//! Every operation that can wait comes in three forms: waiting on the thread
//! ([`Producer::put`], [`Upstream::apply`], [`Cacher::list`], [`Watch::recv`], blocking
//! iteration), waiting in a task ([`Producer::put_async`], [`Upstream::apply_async`],
//! [`Cacher::list_async`], the `futures_core::Stream` of a [`Watch`]) and not waiting
//! ([`Producer::try_put`], [`Upstream::try_apply`], [`Cacher::try_list`],
//! [`Watch::try_recv`]); some also with a bounded wait ([`Cacher::list_timeout`],
//! [`Watch::recv_timeout`]). Errors say which outcome is which: a waiting publish fails
//! only after shutdown ([`PublishError`]); a non-blocking one also when the ring is full
//! ([`TryPublishError`]); [`TryRecvError`] and [`RecvTimeoutError`] tell "nothing yet"
//! from "ended, resume here".
//!
//! A conditional write ([`Producer::put_if`], [`Producer::delete_if`]) carries a check
//! that the dispatcher runs on the key's current object at the change's place in the
//! order — a compare-and-swap no other change can slip into — and answers with the
//! revision it got ([`Written`]) or the object that failed the check
//! ([`ConditionalError::Rejected`]), once the change is visible to `get` and `list`.
//! With [`CacherBuilder::stamp_revision`] each object carries the revision that last
//! wrote it (Kubernetes' `resourceVersion`), which such a check can compare. A list can
//! be taken at an exact past revision still in the window ([`At::Exact`]) and paged
//! ([`ListOptions::after`], [`ListOptions::limit`]).
//!
//! # Progress
//!
//! What each operation may wait on, as arc-swap documents it per operation. "Lock-free"
//! here means no lock and no system call on the path; "wakes" means a sleeper that
//! announced itself (and only then) is woken under a short lock of its own.
//!
//! | operation | progress |
//! |---|---|
//! | `try_put`, `try_delete`, every `Upstream::try_*` | lock-free (one CAS on the ring); wakes the dispatcher if it sleeps |
//! | `put`, `delete`, `Upstream::apply`, … | as `try_`; while the ring is full, parks the thread |
//! | `put_async`, `Upstream::apply_async`, … | as `try_`; while the ring is full, registers the task (a short lock) and returns `Pending` |
//! | `put_if`, `delete_if` | publishes as `put_async`, then waits in the task for the dispatcher's answer |
//! | `get`, `list` at `Latest`, `try_list` | lock-free: one load of the published state, then a walk of it |
//! | `list` at `Exact` in the window | lock-free: as above, then a walk back through the window |
//! | `list`, `list_async`, `list_timeout` at a revision not reached | one short lock to queue the wait; then parks the thread (`list`, `list_timeout`) or the task (`list_async`) until the dispatcher answers |
//! | `watch` | lock-free for an unindexed watch from a reached revision; one short lock to queue an indexed one (or one with bookmarks or a future start) for the dispatcher |
//! | receiving (`try_recv`, `try_visit`, an event ready for `recv`, `visit` or the stream) | lock-free: reads the window or the watch's own buffer |
//! | receiving with nothing ready | registers a wake-up (a short lock), then parks the thread or returns `Pending` |
//! | dropping an indexed watch | one short lock to queue its removal |
//! | `stats`, `revision`, `readiness` | lock-free (relaxed loads) |
//! | `shutdown`, dropping the last `Cacher` | waits for the dispatcher thread to finish |
//! | the dispatcher | lock-free on its hot path (ring, store, window, pushed buffers); takes the control queue's lock only when a message is pending; under `Terminate` waits for a full watcher out of the shared budget |
//!
//! Enums that describe a choice or a reason that may grow ([`WatchError`],
//! [`ListError`], [`ConditionalError`], [`UpstreamError`], [`Start`], [`At`],
//! [`SlowWatcherPolicy`], [`Readiness`]) are `#[non_exhaustive]`; the outcome enums of
//! one operation ([`TryPublishError`], [`TryRecvError`], [`RecvTimeoutError`]),
//! [`Change`] and [`Event`] (Kubernetes' four kinds of watch event) are complete, so a
//! `match` on them needs no wildcard.
//!
//! # Example
//!
//! ```
//! use watchcache::{Cacher, Event, Start, WatchOptions};
//!
//! #[derive(Debug)]
//! struct Pod { node: String }
//!
//! let cacher: Cacher<Pod> = Cacher::builder()
//!     .trigger(|pod: &Pod| Some(pod.node.as_str()))
//!     .build();
//! let producer = cacher.producer();
//! let mut watch = cacher
//!     .watch(WatchOptions::new().prefix("pods/").trigger("node-7").start(Start::Revision(0)))
//!     .unwrap();
//!
//! producer.put("pods/default/web-1", Pod { node: "node-7".into() }).unwrap();
//! producer.put("pods/default/web-2", Pod { node: "node-3".into() }).unwrap();
//! producer.delete("pods/default/web-1").unwrap();
//!
//! let mut seen = Vec::new();
//! for item in &mut watch {
//!     let event = item.unwrap();
//!     seen.push((event.key().unwrap().to_string(), event.revision()));
//!     if let Event::Deleted { .. } = event { break; }
//! }
//! assert_eq!(seen, [("pods/default/web-1".to_string(), 1), ("pods/default/web-1".to_string(), 3)]);
//!
//! let pods = cacher.list(Default::default()).unwrap();
//! assert_eq!((pods.items.len(), pods.revision), (1, 3));
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod cacher;
mod clock;
mod dispatch;
mod error;
mod event;
mod filter;
mod hand_off;
mod lease;
mod notify;
mod options;
mod publish;
mod ready;
mod ring;
mod shared;
mod stats;
mod store;
mod sync;
mod watch;
mod window;

pub use cacher::{Cacher, CacherBuilder, List};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{
    ConditionalError, ListError, PublishError, RecvTimeoutError, TryPublishError, TryRecvError,
    UpstreamError, WatchError,
};
pub use event::{Entry, Event, EventRef};
pub use options::{At, ListOptions, SlowWatcherPolicy, Start, WatchOptions};
pub use publish::{Change, Loader, Producer, Upstream, Written};
pub use ready::Readiness;
pub use stats::Stats;
pub use watch::{IntoIter, Iter, Watch};

#[cfg(all(test, loom))]
mod loom_models;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
