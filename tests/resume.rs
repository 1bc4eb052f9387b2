//! Starting from a revision: replay from the window, expiry, and waiting for a future
//! revision.
mod common;
use common::*;
use std::time::Duration;
use watchcache::{Cacher, ManualClock, Start, WatchError, WatchOptions};

fn filled(window: usize, changes: u32) -> Cacher<u32> {
    let cacher = Cacher::builder().window_capacity(window).build();
    let producer = cacher.producer();
    for value in 1..=changes {
        producer.put(format!("k{}", value % 3), value).unwrap();
    }
    settle(&cacher, changes as u64);
    cacher
}

#[test]
fn replays_everything_after_the_revision() {
    let cacher = filled(100, 10);
    let mut watch = cacher.watch(WatchOptions::new().start(Start::Revision(6))).unwrap();
    let revisions: Vec<_> = take(&mut watch, 4).iter().map(|event| event.revision()).collect();
    assert_eq!(revisions, [7, 8, 9, 10]);
    cacher.producer().put("k9", 11).unwrap();
    assert_eq!(next(&mut watch).unwrap().revision(), 11, "then live");
}

#[test]
fn revision_older_than_the_window_expires_with_the_oldest_usable() {
    let cacher = filled(4, 10);
    let error = cacher.watch(WatchOptions::new().start(Start::Revision(5))).unwrap_err();
    assert_eq!(error, WatchError::Expired { requested: 5, oldest: 6 });
    assert_eq!(error.to_string(), "revision 5 is older than the window (oldest 6); list again");
    let mut watch = cacher.watch(WatchOptions::new().start(Start::Revision(6))).unwrap();
    let revisions: Vec<_> = take(&mut watch, 4).iter().map(|event| event.revision()).collect();
    assert_eq!(revisions, [7, 8, 9, 10], "`oldest` itself is a valid start");
}

#[test]
fn a_reader_that_falls_out_of_the_window_expires() {
    let cacher: Cacher<u32> = Cacher::builder().window_capacity(300).build();
    let producer = cacher.producer();
    let mut watch = cacher.watch(WatchOptions::new()).unwrap();
    producer.put("k", 0).unwrap();
    assert_eq!(next(&mut watch).unwrap().revision(), 1);
    for value in 1..=1000 {
        producer.put("k", value).unwrap();
    }
    settle(&cacher, 1001);
    let (events, error) = drain(&mut watch);
    // The reader may still finish the chunk it holds; then it must stop with a gap-free
    // resume point.
    let last = events.last().map_or(1, |event| event.revision());
    assert!(events.iter().zip(2..).all(|(event, revision)| event.revision() == revision));
    assert_eq!(error, WatchError::Expired { requested: last, oldest: 1001 - 300 });
    assert_eq!(ended(&mut watch), Some(error), "the end repeats");
}

#[test]
fn future_revision_is_waited_for() {
    let cacher: Cacher<u32> = Cacher::builder().build();
    let producer = cacher.producer();
    let mut watch = cacher.watch(WatchOptions::new().start(Start::Revision(3))).unwrap();
    assert!(nothing_yet(&mut watch), "nothing before the revision is reached");
    for value in 1..=5 {
        producer.put("k", value).unwrap();
    }
    let revisions: Vec<_> = take(&mut watch, 2).iter().map(|event| event.revision()).collect();
    assert_eq!(revisions, [4, 5]);
}

#[test]
fn future_revision_not_reached_in_time_is_too_new() {
    let clock = ManualClock::new();
    let cacher: Cacher<u32> = Cacher::builder().clock(clock.clone()).build();
    cacher.producer().put("k", 1).unwrap();
    settle(&cacher, 1);
    let mut watch = cacher.watch(WatchOptions::new().start(Start::Revision(10))).unwrap();
    let indexed: Cacher<u32> = Cacher::builder().trigger(|_: &u32| Some("x")).clock(clock.clone()).build();
    let mut indexed_too = indexed.watch(WatchOptions::new().trigger("x").start(Start::Revision(10))).unwrap();
    assert!(nothing_yet(&mut watch));
    clock.advance(Duration::from_secs(3));
    assert_eq!(next(&mut watch), Err(WatchError::TooNew { requested: 10, current: 1 }));
    assert_eq!(next(&mut indexed_too), Err(WatchError::TooNew { requested: 10, current: 0 }));
    assert_eq!(ended(&mut watch), Some(WatchError::TooNew { requested: 10, current: 1 }));
}

#[test]
fn watch_now_sees_only_later_changes() {
    let cacher = filled(100, 5);
    let mut watch = cacher.watch(WatchOptions::new()).unwrap();
    cacher.producer().put("late", 6).unwrap();
    assert_eq!(summary(&next(&mut watch).unwrap()), ("added", "late".into(), 6));
}
