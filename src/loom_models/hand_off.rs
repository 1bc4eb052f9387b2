//! The hand-off between the dispatcher and a watch, modelled whole: the real dispatcher
//! on one loom thread, a real [`Watch`] on another, the model's main thread publishing
//! and shutting down; each model checks the watch's stream against what it must be. The
//! last model is the other hand-off, from a producer: the real dispatcher and a producer
//! thread that parks on a full ring.
//!
//! These models run a thousand-odd atomic operations per execution, so CI explores them
//! with one preemption (`LOOM_MAX_PREEMPTIONS=1`), where each takes seconds; two take
//! tens of minutes. One preemption is enough to find every loss they were written for
//! (the note on each says which), and loom's exploration is exhaustive within it. The
//! producer's model is the exception: it needs two, and sets them itself, being small.

use crate::clock::ManualClock;
use crate::error::WatchError;
use crate::event::Event;
use crate::options::{SlowWatcherPolicy, Start, WatchOptions};
use crate::publish::{Message, Relist};
use crate::ready::Readiness;
use crate::ring::PushError;
use crate::shared::Shared;
use crate::sync::thread;
use crate::watch::Watch;
use crate::{Cacher, CacherBuilder};
use std::time::Duration;

/// What a consumer saw: data events as (revision, is a bookmark), then the end.
type Seen = (Vec<(u64, bool)>, WatchError);

/// Runs one cacher: the dispatcher and one consumer on loom threads. The watch starts
/// first; changes `1..=early` are in the incoming ring before the threads start, and the
/// main thread publishes the rest up to `puts` while they run (every object on trigger
/// value "n"), calling `between` after each change, then shuts down. Returns what the
/// consumer saw.
///
/// Publishing the early changes before the threads start keeps the model to the
/// dispatcher/consumer hand-off: the producer side is the ring's, modelled above, and
/// every concurrent publish multiplies the interleavings.
fn hand_off(
    policy: SlowWatcherPolicy,
    options: WatchOptions<u64>,
    (early, puts): (u64, u64),
    between: impl Fn(&ManualClock, u64),
) -> Seen {
    let messages =
        (1..=puts).map(|value| Message::Put { key: key(value), object: std::sync::Arc::new(value) });
    run(Cacher::builder(), Readiness::Ready, (policy, options), (messages.collect(), early as usize), between)
}

fn key(value: u64) -> std::sync::Arc<str> {
    std::sync::Arc::from(format!("k{value}"))
}

/// [`hand_off`] with any messages, the first `early` of them published before the
/// threads start; `between` runs after message `n` (counting from 1).
fn run(
    builder: CacherBuilder<u64>,
    readiness: Readiness,
    (policy, options): (SlowWatcherPolicy, WatchOptions<u64>),
    (messages, early): (Vec<Message<u64>>, usize),
    between: impl Fn(&ManualClock, u64),
) -> Seen {
    let clock = ManualClock::new();
    let builder = builder
        .trigger(|_: &u64| Some("n"))
        .slow_watcher_policy(policy)
        .bookmark_period(Duration::from_secs(1))
        .clock(clock.clone());
    let (shared, dispatcher) = builder.assemble(readiness);
    let watch = Watch::start(shared.clone(), options).expect("a valid watch");
    let mut messages = messages.into_iter().zip(1..);
    let mut publish_and_tick = |(message, n)| {
        publish(&shared, message);
        between(&clock, n);
    };
    messages.by_ref().take(early).for_each(&mut publish_and_tick);
    let dispatcher = thread::spawn(dispatcher);
    let consumer = thread::spawn(move || consume(watch));
    messages.for_each(publish_and_tick);
    shared.close();
    let seen = consumer.join().unwrap();
    dispatcher.join().unwrap();
    seen
}

/// Publishes without parking the main thread (so the dispatcher never unparks a thread
/// that is joining, which loom rejects).
fn publish(shared: &Shared<u64>, mut message: Message<u64>) {
    loop {
        match shared.try_publish(message) {
            Ok(()) => return,
            Err(PushError::Full(rejected)) => {
                message = rejected;
                thread::yield_now();
            }
            Err(PushError::Closed(_)) => unreachable!("closed only after publishing"),
        }
    }
}

fn consume(mut watch: Watch<u64>) -> Seen {
    let mut seen = Vec::new();
    loop {
        match watch.recv() {
            Ok(event) => seen.push((event.revision(), matches!(event, Event::Bookmark { .. }))),
            Err(end) => return (seen, end),
        }
    }
}

fn revisions(seen: &[(u64, bool)]) -> Vec<u64> {
    seen.iter().filter(|(_, bookmark)| !bookmark).map(|(revision, _)| *revision).collect()
}

/// An indexed watch after a revision the cacher has not reached: joined only once it is
/// reached, so the event right after it is never pushed and then thrown away. On the old
/// code (joined at once; the consumer emptied its buffer while waiting) this model finds
/// the lost event.
#[test]
fn future_start_joins_once_its_revision_is_reached() {
    loom::model(|| {
        let options = WatchOptions::new().trigger("n").start(Start::Revision(1)).buffer(2);
        let (seen, end) = hand_off(SlowWatcherPolicy::Park, options, (1, 2), |_, _| {});
        assert_eq!((revisions(&seen), end), (vec![2], WatchError::Closed));
    });
}

/// Joining → Live → Parked → Joining → Live under `Park`, with a one-event buffer: the
/// consumer gets every event once, in order, whichever way the phases interleave.
#[test]
fn park_and_rejoin_lose_and_repeat_nothing() {
    loom::model(|| {
        let options = WatchOptions::new().trigger("n").start(Start::Revision(0)).buffer(1);
        let (seen, end) = hand_off(SlowWatcherPolicy::Park, options, (2, 3), |_, _| {});
        assert_eq!((revisions(&seen), end), (vec![1, 2, 3], WatchError::Closed));
    });
}

/// Live → Terminated under `Terminate` with an empty budget: the consumer gets a gap-free
/// prefix and a resume point that covers it exactly.
#[test]
fn termination_delivers_a_prefix_and_its_resume_point() {
    loom::model(|| {
        let options = WatchOptions::new().trigger("n").buffer(1);
        let (seen, end) = hand_off(SlowWatcherPolicy::Terminate, options, (2, 3), |_, _| {});
        let revisions = revisions(&seen);
        match end {
            WatchError::Closed => assert_eq!(revisions, [1, 2, 3]),
            WatchError::TooSlow { resume_from } => {
                assert_eq!(revisions, (1..=resume_from).collect::<Vec<_>>());
            }
            other => panic!("unexpected end {other:?}"),
        }
    });
}

/// Bookmarks beside the buffer: a bookmark at `r` says every event up to `r` was
/// delivered, so no event after it has a revision at or below `r`, and it never runs
/// ahead of the events before it.
#[test]
fn bookmarks_never_overtake_buffered_events() {
    loom::model(|| {
        let options = WatchOptions::new().trigger("n").buffer(1).bookmarks(true);
        let (seen, end) = hand_off(SlowWatcherPolicy::Park, options, (1, 2), |clock, value| {
            if value == 1 {
                clock.advance(Duration::from_secs(1));
            }
        });
        assert_eq!((revisions(&seen), end), (vec![1, 2], WatchError::Closed));
        let mut delivered = 0;
        for (revision, bookmark) in seen {
            if bookmark {
                assert!(revision >= delivered, "a bookmark at {revision} before event {delivered}");
            } else {
                assert!(revision > delivered, "event {revision} after a bookmark at {delivered}");
            }
            delivered = revision;
        }
    });
}

/// An upstream relist while an indexed watch with a one-event buffer reads it: the
/// difference (two records at one revision) reaches the watch whole and once, whether it
/// is pushed, parked half-way or read from the window, and under `Terminate` with an
/// empty budget it is parked rather than ended (a relist never closes a watch).
#[test]
fn a_relist_reaches_a_parked_watch_whole_and_closes_nothing() {
    loom::model(|| {
        let relist = |revision, state: Vec<(&str, u64)>| {
            let state =
                state.into_iter().map(|(key, value)| (std::sync::Arc::from(key), std::sync::Arc::new(value)));
            Message::Relist(Box::new(Relist { revision, state: state.collect() }))
        };
        // Loaded at 10; `a` changed and `b` appeared while the upstream's watch was broken.
        let messages = vec![relist(10, vec![("a", 1)]), relist(20, vec![("a", 5), ("b", 2)])];
        // Started before the load, so live from the first record on.
        let options = WatchOptions::new().trigger("n").buffer(1);
        let builder = Cacher::builder().following_upstream();
        let policy = (SlowWatcherPolicy::Terminate, options);
        let (seen, end) = run(builder, Readiness::Pending, policy, (messages, 1), |_, _| {});
        assert_eq!((revisions(&seen), end), (vec![20, 20], WatchError::Closed));
    });
}

/// A transaction of two records into a one-event buffer under `Terminate` with an empty
/// budget: a watch that has been given the first record is never ended before the
/// second (it is parked for it), so what it yields is whole revisions, up to its resume
/// point if it is ended at all. On the code that terminated it there, this model finds a
/// stream holding half of revision 11 with a resume point of 10.
#[test]
fn a_transaction_is_delivered_whole_even_to_a_terminated_watch() {
    loom::model(|| {
        let load = Message::Relist(Box::new(Relist { revision: 10, state: Vec::new() }));
        let transaction = Message::Transaction(Box::new(crate::publish::Transaction {
            revision: 11,
            changes: vec![(key(1), Some(std::sync::Arc::new(1))), (key(2), Some(std::sync::Arc::new(2)))],
        }));
        let options = WatchOptions::new().trigger("n").buffer(1);
        let builder = Cacher::builder().following_upstream();
        let (seen, end) = run(
            builder,
            Readiness::Pending,
            (SlowWatcherPolicy::Terminate, options),
            (vec![load, transaction], 1),
            |_, _| {},
        );
        let revisions = revisions(&seen);
        match end {
            WatchError::Closed => assert_eq!(revisions, [11, 11]),
            WatchError::TooSlow { resume_from } => {
                assert!(
                    revisions.iter().all(|revision| *revision <= resume_from),
                    "{revisions:?} then {resume_from}"
                );
                assert!(revisions.is_empty() || revisions == [11, 11], "half a revision: {revisions:?}");
            }
            other => panic!("unexpected end {other:?}"),
        }
    });
}

/// A producer that publishes more than the ring holds parks on the full ring (the blocking
/// `publish`) and is woken by the real dispatcher, which wakes parked producers only once
/// the ring is down to half: every change is applied. With two slots and four changes, a
/// batch can end with the ring refilled behind it (no wake-up), and the producer can
/// park on a full ring at any point. The first takes two preemptions (one stops the
/// dispatcher between its last pop and its look at the ring, one lets the producer
/// refill it), so this model sets its own bound rather than CI's one for this file;
/// its executions are few (seconds with two).
#[test]
fn a_producer_parked_on_a_full_ring_is_woken_at_half() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(|| {
        let builder = Cacher::builder().incoming_capacity(2).clock(ManualClock::new());
        let (shared, dispatcher) = builder.assemble(Readiness::Ready);
        let dispatcher = thread::spawn(dispatcher);
        let producer = {
            let shared = shared.clone();
            thread::spawn(move || {
                for value in 1..=4 {
                    let message = Message::Put { key: key(value), object: std::sync::Arc::new(value) };
                    assert!(shared.publish(message).is_ok(), "closed only after publishing");
                }
            })
        };
        producer.join().unwrap();
        shared.close();
        dispatcher.join().unwrap();
        assert_eq!(shared.store.snapshot().revision, 4);
    });
}
