//! Async publishing: `put_async` and `delete_async` wait for room in the incoming ring
//! without blocking the thread, and a dropped future publishes nothing.
mod common;
use common::*;
use std::time::Duration;
use watchcache::{Cacher, List, ListOptions, ManualClock, SlowWatcherPolicy, WatchOptions};

/// A cacher whose dispatcher is held up: under `Terminate` with a budget longer than any
/// test, it waits for a watch that never reads, and its two-slot ring fills.
fn held_up() -> (Cacher<u32>, watchcache::Watch<u32>) {
    let clock = ManualClock::new();
    let cacher: Cacher<u32> = Cacher::builder()
        .trigger(|_: &u32| Some("all"))
        .slow_watcher_policy(SlowWatcherPolicy::Terminate)
        .dispatch_budget(Duration::from_secs(600), Duration::from_secs(600))
        .incoming_capacity(2)
        .clock(clock.clone())
        .build();
    clock.advance(Duration::from_secs(1));
    let stalled = cacher.watch(WatchOptions::new().trigger("all").buffer(1)).unwrap();
    wait_until("the watch joined live dispatch", || cacher.stats().watchers_indexed == 1);
    let producer = cacher.producer();
    producer.put("k", 1).unwrap();
    producer.put("k", 2).unwrap();
    wait_until("the dispatcher waits for the stalled watch", || cacher.stats().watchers_blocked == 1);
    producer.put("k", 3).unwrap();
    producer.put("k", 4).unwrap();
    (cacher, stalled)
}

#[tokio::test(flavor = "current_thread")]
async fn put_async_waits_without_blocking_the_thread() {
    let (cacher, stalled) = held_up();
    let producer = cacher.producer();
    let mut waiting = Box::pin(producer.put_async("k", 5));
    assert!(futures::poll!(waiting.as_mut()).is_pending(), "the ring is full");
    // The runtime's only thread is free: another task runs to completion meanwhile.
    assert_eq!(tokio::spawn(async { 7 }).await.unwrap(), 7);
    assert!(futures::poll!(waiting.as_mut()).is_pending(), "still full");

    drop(stalled);
    waiting.await.unwrap();
    producer.delete_async("k").await.unwrap();
    settle(&cacher, 6);
    let List { items: objects, revision, .. } = cacher.list(ListOptions::new()).unwrap();
    assert_eq!((objects.len(), revision), (0, 6), "puts 1 to 5, then the delete");
}

#[tokio::test(flavor = "current_thread")]
async fn a_dropped_put_async_publishes_nothing() {
    let (cacher, stalled) = held_up();
    let producer = cacher.producer();
    let mut cancelled = Box::pin(producer.put_async("cancelled", 99));
    assert!(futures::poll!(cancelled.as_mut()).is_pending());
    drop(cancelled);
    let mut cancelled_delete = Box::pin(producer.delete_async("k"));
    assert!(futures::poll!(cancelled_delete.as_mut()).is_pending());
    drop(cancelled_delete);

    drop(stalled);
    producer.put_async("last", 6).await.unwrap();
    settle(&cacher, 5);
    let List { items: objects, revision, .. } = cacher.list(ListOptions::new()).unwrap();
    let keys: Vec<_> = objects.iter().map(|(key, _)| key.to_string()).collect();
    assert_eq!((keys, revision), (vec!["k".to_string(), "last".to_string()], 5));
}

#[tokio::test(flavor = "current_thread")]
async fn put_async_after_shutdown_returns_the_value() {
    let cacher: Cacher<u32> = Cacher::builder().build();
    let producer = cacher.producer();
    cacher.shutdown();
    assert_eq!(producer.put_async("k", 1).await.unwrap_err().into_inner(), 1);
    assert!(producer.delete_async("k").await.is_err());
}
