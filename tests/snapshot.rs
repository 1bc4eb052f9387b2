//! `Start::Snapshot`: the matching state as `Added` events, the end-of-initial-events
//! bookmark, then live.
mod common;
use common::*;
use watchcache::{Cacher, Event, Start, WatchOptions};

fn populated() -> Cacher<Pod> {
    let cacher = indexed().build();
    let producer = cacher.producer();
    producer.put("pods/b", pod("n1", 2)).unwrap();
    producer.put("pods/a", pod("n1", 1)).unwrap();
    producer.put("pods/c", pod("n2", 3)).unwrap();
    producer.put("other/x", pod("n1", 4)).unwrap();
    producer.delete("pods/b").unwrap();
    settle(&cacher, 5);
    cacher
}

fn is_initial_end<T>(event: &Event<T>, at: u64) -> bool {
    matches!(event, Event::Bookmark { revision, initial_events_end: true } if *revision == at)
}

#[test]
fn unindexed_snapshot_then_marker_then_live() {
    let cacher = populated();
    let mut watch = cacher.watch(WatchOptions::new().prefix("pods/").start(Start::Snapshot)).unwrap();
    let initial = take(&mut watch, 3);
    assert_eq!(summaries(&initial[..2]), [("added", "pods/a".into(), 5), ("added", "pods/c".into(), 5)]);
    assert!(is_initial_end(&initial[2], 5));
    cacher.producer().put("pods/a", pod("n1", 7)).unwrap();
    assert_eq!(summary(&next(&mut watch).unwrap()), ("modified", "pods/a".into(), 6));
}

#[test]
fn indexed_snapshot_then_marker_then_live() {
    let cacher = populated();
    let mut watch =
        cacher.watch(WatchOptions::new().prefix("pods/").trigger("n1").start(Start::Snapshot)).unwrap();
    let initial = take(&mut watch, 2);
    assert_eq!(summary(&initial[0]), ("added", "pods/a".into(), 5));
    assert!(is_initial_end(&initial[1], 5));
    let producer = cacher.producer();
    producer.put("pods/c", pod("n1", 8)).unwrap();
    producer.put("pods/a", pod("n2", 9)).unwrap();
    assert_eq!(
        summaries(&take(&mut watch, 2)),
        [("added", "pods/c".into(), 6), ("deleted", "pods/a".into(), 7)],
        "moves in and out after the snapshot"
    );
}

#[test]
fn empty_snapshot_still_ends_with_the_marker() {
    let cacher = indexed().build();
    let mut watch = cacher.watch(WatchOptions::new().start(Start::Snapshot)).unwrap();
    assert!(is_initial_end(&next(&mut watch).unwrap(), 0));
}
