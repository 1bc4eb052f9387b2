//! An embeddable, lock-free watch cache for keyed, versioned state: the Kubernetes API
//! server's watch cache ("Cacher"), as a library for any `T`.
//!
//! Producers publish changes ([`Producer::put`], [`Producer::delete`]) into a bounded
//! ring. One dispatcher thread per [`Cacher`] orders them, keeps the current state
//! ([`Cacher::get`], [`Cacher::list`]) and a sliding window of recent events, and fans
//! each event out to watchers ([`Cacher::watch`]), each filtered by key prefix, an
//! indexed trigger value and a predicate.
//!
//! # Guarantees
//!
//! 1. **Total order.** Every change gets a revision, strictly increasing by one. Each
//!    producer's changes are applied in the order it published them.
//! 2. **Exactly once, in order, or a resumable error.** A watch yields every matching
//!    event in revision order with no gap and no duplicate, or ends with an error naming
//!    the revision to resume from ([`WatchError::Expired`], [`WatchError::TooSlow`]).
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
//! nothing. A watch starts [`Start::Now`], after a [`Start::Revision`], or from a
//! [`Start::Snapshot`] (initial `Added` events, then a bookmark with
//! `initial_events_end`, then live).
//!
//! # Publishing and receiving
//!
//! Every operation that can wait comes in three forms: waiting on the thread
//! ([`Producer::put`], [`Watch::recv`], blocking iteration), waiting in a task
//! ([`Producer::put_async`], the `futures_core::Stream` of a [`Watch`]) and not waiting
//! ([`Producer::try_put`], [`Watch::try_recv`]). Errors say which outcome is which:
//! a waiting publish fails only after shutdown ([`PublishError`]); a non-blocking one
//! also when the ring is full ([`TryPublishError`]); [`TryRecvError`] and
//! [`RecvTimeoutError`] tell "nothing yet" from "ended, resume here".
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
//! Enums that describe a choice or a reason that may grow ([`WatchError`],
//! [`ListError`], [`ConditionalError`], [`Start`], [`At`], [`SlowWatcherPolicy`], [`Readiness`]) are
//! `#[non_exhaustive]`; the outcome enums of one operation ([`TryPublishError`],
//! [`TryRecvError`], [`RecvTimeoutError`]) and [`Event`] (Kubernetes' four kinds of watch
//! event) are complete, so a `match` on them needs no wildcard.
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
//! let (pods, revision) = cacher.list(Default::default()).unwrap();
//! assert_eq!((pods.len(), revision), (1, 3));
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod cacher;
mod clock;
mod dispatch;
mod error;
mod event;
mod notify;
mod options;
mod ready;
mod ring;
mod shared;
mod stats;
mod store;
mod sync;
mod watch;
mod window;

pub use cacher::{Cacher, CacherBuilder, Loader, Producer};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{
    ConditionalError, ListError, PublishError, RecvTimeoutError, TryPublishError, TryRecvError, WatchError,
};
pub use event::{Event, EventRef};
pub use options::{At, ListOptions, SlowWatcherPolicy, Start, WatchOptions};
pub use ready::Readiness;
pub use shared::Written;
pub use stats::Stats;
pub use watch::{IntoIter, Iter, Watch};

#[cfg(all(test, loom))]
mod loom_models;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
