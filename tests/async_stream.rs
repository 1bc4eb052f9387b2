//! Async consumption: `Watch` is a `futures_core::Stream`, woken by the dispatcher,
//! under a multi-threaded tokio runtime.
mod common;
use common::*;
use futures::StreamExt;
use watchcache::{Cacher, Start, WatchError, WatchOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_yields_events_then_closed() {
    let cacher = indexed().build();
    let unindexed = cacher.watch(WatchOptions::new().start(Start::Revision(0))).unwrap();
    let mut indexed =
        cacher.watch(WatchOptions::new().trigger("n").start(Start::Revision(0)).buffer(4)).unwrap();
    let producer = cacher.producer();
    let publisher = std::thread::spawn(move || {
        for value in 1..=200 {
            producer.put(format!("p{}", value % 13), pod("n", value)).unwrap();
        }
    });
    let to_the_end = tokio::spawn(async move {
        let mut watch = unindexed;
        let mut revisions = Vec::new();
        while let Some(item) = watch.next().await {
            match item {
                Ok(event) => revisions.push(event.revision()),
                Err(error) => return (revisions, error),
            }
        }
        unreachable!("a watch ends with an error item before None");
    });
    let mut revisions = Vec::new();
    while revisions.len() < 200 {
        revisions.push(indexed.next().await.unwrap().unwrap().revision());
    }
    assert_eq!(revisions, (1..=200).collect::<Vec<_>>());
    publisher.join().unwrap();

    cacher.shutdown();
    let (revisions, end) = to_the_end.await.unwrap();
    assert_eq!(revisions, (1..=200).collect::<Vec<_>>());
    assert_eq!(end, WatchError::Closed);
    assert_eq!(indexed.next().await.unwrap().unwrap_err(), WatchError::Closed);
    assert!(indexed.next().await.is_none());
}

#[tokio::test]
async fn current_thread_runtime_is_woken_by_the_dispatcher() {
    let cacher: Cacher<u32> = Cacher::builder().build();
    let mut watch = cacher.watch(WatchOptions::new()).unwrap();
    let producer = cacher.producer();
    let waiting = tokio::spawn(async move { watch.next().await.unwrap().unwrap().revision() });
    tokio::task::yield_now().await;
    producer.put("k", 1).unwrap();
    assert_eq!(waiting.await.unwrap(), 1);
}
