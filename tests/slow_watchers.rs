//! Slow watchers under each policy: Park (catch up from the window, rejoin, no gap),
//! Terminate (buffered events, then `TooSlow` with a resume point that loses nothing).
mod common;
use common::*;
use std::time::Duration;
use watchcache::{Cacher, ManualClock, SlowWatcherPolicy, Start, WatchError, WatchOptions};

fn publish(cacher: &Cacher<Pod>, node: &str, values: std::ops::RangeInclusive<u32>) {
    let producer = cacher.producer();
    for value in values {
        producer.put(format!("pod-{value}"), pod(node, value)).unwrap();
    }
}

fn values(events: &[watchcache::Event<Pod>]) -> Vec<u32> {
    events.iter().map(|event| object(event).value).collect()
}

#[test]
fn park_catches_up_from_the_window_and_rejoins() {
    let cacher = indexed().slow_watcher_policy(SlowWatcherPolicy::Park).build();
    let mut slow = cacher.watch(WatchOptions::new().trigger("n").buffer(2)).unwrap();
    let mut healthy = cacher.watch(WatchOptions::new().trigger("n").buffer(100)).unwrap();
    wait_until("both joined live dispatch", || cacher.stats().watchers_indexed == 2);
    publish(&cacher, "n", 1..=20);
    settle(&cacher, 20);
    assert_eq!(values(&take(&mut healthy, 20)), (1..=20).collect::<Vec<_>>());
    let stats = cacher.stats();
    assert_eq!((stats.parks, stats.watchers_parked, stats.watchers_indexed), (1, 1, 1));

    // The consumer drains its buffer, then the window, then rejoins: no gap, no repeat.
    assert_eq!(values(&take(&mut slow, 20)), (1..=20).collect::<Vec<_>>());
    assert!(nothing_yet(&mut slow), "caught up: it asks to rejoin");
    wait_until("the watcher rejoined", || {
        let stats = cacher.stats();
        (stats.watchers_parked, stats.watchers_indexed) == (0, 2)
    });
    publish(&cacher, "n", 21..=22);
    assert_eq!(values(&take(&mut slow, 2)), [21, 22], "live again after rejoining");
    assert_eq!(cacher.stats().terminations, 0);
}

#[test]
fn parked_watcher_that_falls_out_of_the_window_expires() {
    let cacher = indexed().window_capacity(5).build();
    let mut slow = cacher.watch(WatchOptions::new().trigger("n").buffer(1)).unwrap();
    wait_until("the watch joined live dispatch", || cacher.stats().watchers_indexed == 1);
    publish(&cacher, "n", 1..=20);
    settle(&cacher, 20);
    assert_eq!(values(&take(&mut slow, 1)), [1], "the buffered event first");
    assert_eq!(next(&mut slow), Err(WatchError::Expired { requested: 1, oldest: 15 }));
    let resumed = cacher.watch(WatchOptions::new().trigger("n").start(Start::Revision(15))).unwrap();
    drop(resumed);
}

#[test]
fn terminate_with_an_empty_budget_delivers_the_buffer_then_too_slow() {
    // The budget starts empty and the manual clock never refills it.
    let cacher =
        indexed().slow_watcher_policy(SlowWatcherPolicy::Terminate).clock(ManualClock::new()).build();
    let mut slow = cacher.watch(WatchOptions::new().trigger("n").buffer(2)).unwrap();
    let mut healthy = cacher.watch(WatchOptions::new().trigger("n").buffer(100)).unwrap();
    wait_until("both joined live dispatch", || cacher.stats().watchers_indexed == 2);
    publish(&cacher, "n", 1..=5);
    assert_eq!(values(&take(&mut healthy, 5)), [1, 2, 3, 4, 5]);
    assert_eq!(values(&take(&mut slow, 2)), [1, 2]);
    assert_eq!(next(&mut slow), Err(WatchError::TooSlow { resume_from: 2 }));
    assert_eq!(ended(&mut slow), Some(WatchError::TooSlow { resume_from: 2 }));
    assert_eq!(cacher.stats().terminations, 1);

    let mut resumed = cacher.watch(WatchOptions::new().trigger("n").start(Start::Revision(2))).unwrap();
    assert_eq!(values(&take(&mut resumed, 3)), [3, 4, 5], "resuming loses nothing");
}

#[test]
fn terminate_waits_out_of_the_budget_for_a_consumer_that_drains() {
    let clock = ManualClock::new();
    // A budget so large the consumer always drains within it.
    let cacher = indexed()
        .slow_watcher_policy(SlowWatcherPolicy::Terminate)
        .dispatch_budget(Duration::from_secs(60), Duration::from_secs(600))
        .clock(clock.clone())
        .build();
    clock.advance(Duration::from_secs(10));
    let mut watch = cacher.watch(WatchOptions::new().trigger("n").buffer(1)).unwrap();
    wait_until("the watch joined live dispatch", || cacher.stats().watchers_indexed == 1);
    let producer = cacher.producer();
    let publisher = std::thread::spawn(move || {
        for value in 1..=3 {
            producer.put(format!("pod-{value}"), pod("n", value)).unwrap();
        }
    });
    wait_until("the dispatcher blocks on the full buffer", || cacher.stats().watchers_blocked > 0);
    assert_eq!(values(&take(&mut watch, 3)), [1, 2, 3]);
    publisher.join().unwrap();
    assert_eq!(cacher.stats().terminations, 0);
}

fn unindexed_terminate(window: usize) -> Cacher<Pod> {
    Cacher::builder().slow_watcher_policy(SlowWatcherPolicy::Terminate).window_capacity(window).build()
}

#[test]
fn unindexed_watch_that_never_reads_is_held_to_its_buffer_from_the_start() {
    let cacher = unindexed_terminate(1000);
    let mut watch = cacher.watch(WatchOptions::new().buffer(4)).unwrap();
    publish(&cacher, "n", 1..=10);
    settle(&cacher, 10);
    let (events, error) = drain(&mut watch);
    assert_eq!(values(&events), [1, 2, 3, 4]);
    assert_eq!(error, WatchError::TooSlow { resume_from: 4 });
    assert_eq!(cacher.stats().terminations, 1);
}

#[test]
fn unindexed_watch_that_has_read_is_held_to_the_same_rule() {
    let cacher = unindexed_terminate(1000);
    let mut watch = cacher.watch(WatchOptions::new().buffer(4)).unwrap();
    assert!(nothing_yet(&mut watch));
    publish(&cacher, "n", 1..=10);
    settle(&cacher, 10);
    let (events, error) = drain(&mut watch);
    assert_eq!((values(&events), error), (vec![1, 2, 3, 4], WatchError::TooSlow { resume_from: 4 }));
}

#[test]
fn unindexed_watch_from_a_revision_counts_only_what_arrives_after_it_started() {
    let cacher = unindexed_terminate(1000);
    publish(&cacher, "n", 1..=50);
    settle(&cacher, 50);
    let mut watch = cacher.watch(WatchOptions::new().buffer(4).start(Start::Revision(0))).unwrap();
    publish(&cacher, "n", 51..=60);
    settle(&cacher, 60);
    let (events, error) = drain(&mut watch);
    assert_eq!(values(&events), (1..=54).collect::<Vec<_>>(), "history, then four live events");
    assert_eq!(error, WatchError::TooSlow { resume_from: 54 });
    let mut resumed = cacher.watch(WatchOptions::new().start(Start::Revision(54))).unwrap();
    assert_eq!(values(&take(&mut resumed, 6)), (55..=60).collect::<Vec<_>>(), "resuming loses nothing");
}

#[test]
fn unindexed_watcher_replaying_history_is_not_too_slow() {
    let cacher: Cacher<Pod> =
        Cacher::builder().slow_watcher_policy(SlowWatcherPolicy::Terminate).window_capacity(1000).build();
    publish(&cacher, "n", 1..=50);
    settle(&cacher, 50);
    let mut watch = cacher.watch(WatchOptions::new().buffer(4).start(Start::Revision(0))).unwrap();
    assert_eq!(values(&take(&mut watch, 50)), (1..=50).collect::<Vec<_>>());
}

#[test]
fn a_stalled_watcher_does_not_hold_up_others_under_park() {
    let cacher = indexed().build();
    let _stalled: Vec<_> =
        (0..10).map(|_| cacher.watch(WatchOptions::new().trigger("n").buffer(1)).unwrap()).collect();
    let mut healthy = cacher.watch(WatchOptions::new().trigger("n").buffer(1000)).unwrap();
    wait_until("all joined live dispatch", || cacher.stats().watchers_indexed == 11);
    publish(&cacher, "n", 1..=500);
    assert_eq!(take(&mut healthy, 500).len(), 500);
    assert_eq!(cacher.stats().parks, 10);
}
