//! Shutdown: every accepted change is applied; each watch yields what it had, then
//! `Closed`, then `None`; producers get `Closed` with their value.
mod common;
use common::*;
use watchcache::{
    At, Cacher, ListError, ListOptions, PublishError, RecvTimeoutError, SlowWatcherPolicy, Start,
    TryPublishError, WatchError, WatchOptions,
};

#[test]
fn watches_get_their_events_then_closed_then_none() {
    let cacher = indexed().build();
    let producer = cacher.producer();
    let mut unindexed = cacher.watch(WatchOptions::new().start(Start::Revision(0))).unwrap();
    let mut indexed = cacher.watch(WatchOptions::new().trigger("n").start(Start::Revision(0))).unwrap();
    let mut parked = cacher.watch(WatchOptions::new().trigger("n").buffer(1)).unwrap();
    wait_until("both indexed watches joined", || cacher.stats().watchers_indexed == 2);
    for value in 1..=10 {
        producer.put(format!("p{value}"), pod("n", value)).unwrap();
    }
    cacher.shutdown();
    for watch in [&mut unindexed, &mut indexed, &mut parked] {
        let (events, end) = drain(watch);
        assert_eq!(
            events.iter().map(|event| event.revision()).collect::<Vec<_>>(),
            (1..=10).collect::<Vec<_>>()
        );
        assert_eq!(end, WatchError::Closed);
        assert_eq!(ended(watch), Some(WatchError::Closed), "the end repeats");
        assert_eq!(watch.recv_timeout(PATIENCE), Err(RecvTimeoutError::Ended(WatchError::Closed)));
        assert_eq!(watch.recv(), Err(WatchError::Closed));
        assert!(watch.into_iter().next().is_none(), "the iterator ends after the end item");
    }
    assert_eq!(producer.put("late", pod("n", 11)), Err(PublishError(pod("n", 11))));
    assert_eq!(producer.try_delete("late"), Err(TryPublishError::Closed(())));
}

#[test]
fn dropping_the_last_handle_stops_the_dispatcher() {
    let cacher: Cacher<u32> = Cacher::builder().build();
    let producer = cacher.producer();
    let mut watch = cacher.watch(WatchOptions::new()).unwrap();
    producer.put("k", 1).unwrap();
    let clone = cacher.clone();
    drop(cacher);
    assert!(producer.put("k", 2).is_ok(), "a clone keeps it running");
    drop(clone);
    let (events, end) = drain(&mut watch);
    assert_eq!(events.len(), 2);
    assert_eq!(end, WatchError::Closed);
    assert_eq!(producer.put("k", 3), Err(PublishError(3)));
}

#[test]
fn producers_blocked_on_a_full_ring_are_released_by_shutdown() {
    let cacher: Cacher<u32> = Cacher::builder().incoming_capacity(1).build();
    let producers: Vec<_> = (0..4)
        .map(|id| {
            let producer = cacher.producer();
            std::thread::spawn(move || {
                let mut accepted = 0;
                for value in 0..1000 {
                    match producer.put(format!("p{id}"), value) {
                        Ok(()) => accepted += 1,
                        Err(PublishError(_)) => break,
                    }
                }
                accepted
            })
        })
        .collect();
    wait_until("some changes applied", || cacher.revision() > 10);
    cacher.shutdown();
    let accepted: u64 = producers.into_iter().map(|handle| handle.join().unwrap()).sum();
    assert_eq!(cacher.revision(), accepted, "every accepted change was applied, none lost");
}

#[test]
fn list_waiting_for_a_revision_ends_at_shutdown() {
    let cacher: Cacher<u32> = Cacher::builder().build();
    let waiter = {
        let cacher = cacher.clone();
        std::thread::spawn(move || {
            cacher.list(ListOptions::new().at(At::AtLeast(5))).map(|list| list.revision)
        })
    };
    cacher.shutdown();
    assert_eq!(waiter.join().unwrap(), Err(ListError::TooNew { requested: 5, current: 0 }));
}

#[test]
fn terminate_policy_watch_also_closes_cleanly() {
    let cacher = indexed().slow_watcher_policy(SlowWatcherPolicy::Terminate).build();
    let mut watch = cacher.watch(WatchOptions::new().trigger("n").buffer(100)).unwrap();
    cacher.producer().put("p", pod("n", 1)).unwrap();
    cacher.shutdown();
    let (events, end) = drain(&mut watch);
    assert_eq!((events.len(), end), (1, WatchError::Closed));
}

#[test]
fn a_panicking_predicate_ends_watches_instead_of_hanging_them() {
    let cacher = indexed().build();
    let mut watch = cacher
        .watch(WatchOptions::new().trigger("n").predicate(|pod: &Pod| {
            assert!(pod.value != 13, "user code panics on the dispatcher thread");
            true
        }))
        .unwrap();
    let mut unindexed = cacher.watch(WatchOptions::new()).unwrap();
    wait_until("the watch joined live dispatch", || cacher.stats().watchers_indexed == 1);
    let producer = cacher.producer();
    producer.put("ok", pod("n", 1)).unwrap();
    producer.put("boom", pod("n", 13)).unwrap();
    assert_eq!(summary(&next(&mut watch).unwrap()), ("added", "ok".into(), 1));
    assert_eq!(next(&mut watch), Err(WatchError::Closed));
    let (events, end) = drain(&mut unindexed);
    assert_eq!((events.len(), end), (2, WatchError::Closed), "the change that panicked was applied");
    wait_until("producers see the end", || producer.put("late", pod("n", 2)).is_err());
}
