//! Batches: `visit` passes ready events by reference, `recv_many` moves them; both in
//! order, up to the limit, with the end reported once everything before it was visited.
mod common;
use common::*;
use futures::StreamExt;
use std::sync::Arc;
use watchcache::{Cacher, Event, EventRef, Start, TryRecvError, WatchError, WatchOptions};

fn filled(changes: u32) -> Cacher<Pod> {
    let cacher = indexed().build();
    let producer = cacher.producer();
    for value in 1..=changes {
        producer.put(format!("p{value}"), pod("n", value)).unwrap();
    }
    settle(&cacher, u64::from(changes));
    cacher
}

#[test]
fn visit_borrows_the_stored_objects_up_to_the_limit() {
    let cacher = filled(10);
    let mut watch = cacher.watch(WatchOptions::new().start(Start::Revision(0))).unwrap();
    let (stored, _) = cacher.get("p5").unwrap();
    let stored = stored.unwrap();
    let mut seen = Vec::new();
    assert_eq!(watch.visit(4, |event| seen.push(event.revision())).unwrap(), 4);
    assert_eq!(seen, [1, 2, 3, 4]);
    watch
        .visit(1, |event| {
            let object: &Arc<Pod> = event.object().unwrap();
            assert!(Arc::ptr_eq(object, &stored), "the object the store holds, not a copy");
        })
        .unwrap();
    let count_before = Arc::strong_count(&stored);
    let mut rest = Vec::new();
    assert_eq!(watch.visit(100, |event| rest.push(event.revision())).unwrap(), 5);
    assert_eq!(rest, (6..=10).collect::<Vec<_>>(), "the rest, in order, as many as are ready");
    assert_eq!(Arc::strong_count(&stored), count_before, "visiting clones nothing");
}

#[test]
fn try_visit_says_empty_then_ended_after_the_last_event() {
    let cacher = filled(3);
    let mut watch = cacher.watch(WatchOptions::new().trigger("n").start(Start::Revision(1))).unwrap();
    let mut seen = Vec::new();
    let mut first_batch = 0;
    while first_batch < 2 {
        match watch.try_visit(8, |event| seen.push(event.revision())) {
            Ok(visited) => first_batch += visited,
            Err(TryRecvError::Empty) => std::thread::yield_now(),
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, [2, 3]);
    assert_eq!(watch.try_visit(8, |_| unreachable!()), Err(TryRecvError::Empty));
    cacher.shutdown();
    assert_eq!(watch.try_visit(8, |_| unreachable!()), Err(TryRecvError::Ended(WatchError::Closed)));
    assert_eq!(watch.visit(8, |_| unreachable!()), Err(WatchError::Closed), "the end repeats");
}

#[test]
fn events_taken_ahead_count_as_unread_until_yielded() {
    let cacher = filled(5);
    let mut watch = cacher.watch(WatchOptions::new().start(Start::Revision(0))).unwrap();
    assert_eq!(watch.lag(), 5);
    assert_eq!(watch.recv().unwrap().revision(), 1);
    assert_eq!(watch.revision(), 1, "complete up to what was yielded, not what was read");
    assert_eq!(watch.lag(), 4);
    let mut rest = Vec::new();
    watch.visit(2, |event| rest.push(event.revision())).unwrap();
    assert_eq!(rest, [2, 3], "a batch receive yields what was taken ahead first, in order");
    assert_eq!((watch.revision(), watch.lag()), (3, 2));
    assert_eq!(watch.try_recv().unwrap().revision(), 4);
    watch.visit(8, |event| rest.push(event.revision())).unwrap();
    assert_eq!(rest, [2, 3, 5]);
    assert_eq!((watch.revision(), watch.lag()), (5, 0));
    cacher.shutdown();
    assert_eq!(watch.recv(), Err(WatchError::Closed));
}

#[test]
fn recv_many_moves_owned_events() {
    let cacher = filled(5);
    let mut watch = cacher.watch(WatchOptions::new().start(Start::Revision(0))).unwrap();
    let mut buffer = Vec::new();
    assert_eq!(watch.recv_many(&mut buffer, 3).unwrap(), 3);
    assert_eq!(watch.recv_many(&mut buffer, 0).unwrap(), 0, "a limit of 0 takes nothing");
    assert_eq!(watch.recv_many(&mut buffer, 10).unwrap(), 2);
    assert_eq!(
        summaries(&buffer).iter().map(|(_, _, revision)| *revision).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    cacher.shutdown();
    assert_eq!(watch.recv_many(&mut buffer, 10), Err(WatchError::Closed));
    assert_eq!(buffer.len(), 5);
}

#[test]
fn a_snapshot_start_visits_its_initial_events_in_batches() {
    let cacher = filled(7);
    let mut watch = cacher.watch(WatchOptions::new().start(Start::Snapshot)).unwrap();
    let mut seen: Vec<(String, bool)> = Vec::new();
    let mut record = |event: EventRef<'_, Pod>| {
        let marker = matches!(event, EventRef::Bookmark { initial_events_end: true, .. });
        seen.push((event.key().map(|key| key.to_string()).unwrap_or_default(), marker));
    };
    assert_eq!(watch.visit(3, &mut record).unwrap(), 3);
    assert_eq!(watch.visit(3, &mut record).unwrap(), 3);
    assert_eq!(watch.visit(3, &mut record).unwrap(), 2, "the last object and the marker");
    let keys: Vec<_> = seen.iter().map(|(key, _)| key.clone()).collect();
    assert_eq!(keys[..7], ["p1", "p2", "p3", "p4", "p5", "p6", "p7"]);
    assert_eq!(seen[7], (String::new(), true));
}

#[test]
fn an_indexed_watch_visits_across_a_park() {
    let cacher = indexed().build();
    let mut watch = cacher.watch(WatchOptions::new().trigger("n").buffer(2)).unwrap();
    wait_until("the watch joined live dispatch", || cacher.stats().watchers_indexed == 1);
    let producer = cacher.producer();
    for value in 1..=20 {
        producer.put(format!("p{value}"), pod("n", value)).unwrap();
    }
    settle(&cacher, 20);
    assert!(cacher.stats().parks >= 1, "the two-event buffer overflowed");
    let mut seen = Vec::new();
    while seen.len() < 20 {
        watch.visit(7, |event| seen.push(event.revision())).unwrap();
    }
    assert_eq!(seen, (1..=20).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visit_async_and_the_stream_share_one_position() {
    let cacher = filled(6);
    let mut watch = cacher.watch(WatchOptions::new().start(Start::Revision(0))).unwrap();
    let mut seen = Vec::new();
    watch.visit_async(2, |event| seen.push(event.revision())).await.unwrap();
    let next: Event<Pod> = watch.next().await.unwrap().unwrap();
    seen.push(next.revision());
    while seen.len() < 6 {
        watch.visit_async(10, |event| seen.push(event.revision())).await.unwrap();
    }
    assert_eq!(seen, [1, 2, 3, 4, 5, 6]);
    cacher.shutdown();
    assert_eq!(watch.visit_async(10, |_| unreachable!()).await, Err(WatchError::Closed));
    assert!(watch.next().await.is_none(), "the end was reported; the stream is done");
}
