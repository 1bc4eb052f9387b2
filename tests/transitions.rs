//! The per-watcher transition table: what a filtered watch sees when objects move in and
//! out of its filter.
mod common;
use common::*;
use watchcache::{Start, WatchOptions};

#[test]
fn predicate_moves_objects_in_and_out() {
    let cacher = indexed().build();
    let producer = cacher.producer();
    let mut watch = cacher
        .watch(WatchOptions::new().predicate(|pod: &Pod| pod.value >= 10).start(Start::Revision(0)))
        .unwrap();
    producer.put("p", pod("n", 1)).unwrap(); // neither → nothing
    producer.put("p", pod("n", 11)).unwrap(); // in → added
    producer.put("p", pod("n", 12)).unwrap(); // both → modified
    producer.put("p", pod("n", 2)).unwrap(); // out → deleted, with the last matching state
    producer.delete("p").unwrap(); // neither → nothing
    producer.put("q", pod("n", 20)).unwrap();
    let events = take(&mut watch, 4);
    assert_eq!(
        summaries(&events),
        [
            ("added", "p".into(), 2),
            ("modified", "p".into(), 3),
            ("deleted", "p".into(), 4),
            ("added", "q".into(), 6)
        ]
    );
    assert_eq!(object(&events[2]).value, 12, "deleted carries the last state that matched");
}

#[test]
fn moving_between_trigger_values_reaches_both_sides() {
    let cacher = indexed().build();
    let producer = cacher.producer();
    let mut on_a = cacher.watch(WatchOptions::new().trigger("a").start(Start::Revision(0))).unwrap();
    let mut on_b = cacher.watch(WatchOptions::new().trigger("b").start(Start::Revision(0))).unwrap();
    producer.put("pod", pod("a", 1)).unwrap();
    producer.put("pod", pod("b", 2)).unwrap();
    producer.put("pod", pod("b", 3)).unwrap();
    producer.delete("pod").unwrap();
    let left = take(&mut on_a, 2);
    assert_eq!(summaries(&left), [("added", "pod".into(), 1), ("deleted", "pod".into(), 2)]);
    assert_eq!(*object(&left[1]).as_ref(), pod("a", 1), "the move off `a` carries the state on `a`");
    let arrived = take(&mut on_b, 3);
    assert_eq!(
        summaries(&arrived),
        [("added", "pod".into(), 2), ("modified", "pod".into(), 3), ("deleted", "pod".into(), 4)]
    );
}

#[test]
fn prefix_limits_keys() {
    let cacher = indexed().build();
    let producer = cacher.producer();
    let mut watch = cacher.watch(WatchOptions::new().prefix("pods/ns1/").start(Start::Revision(0))).unwrap();
    producer.put("pods/ns2/x", pod("n", 1)).unwrap();
    producer.put("pods/ns1/y", pod("n", 2)).unwrap();
    producer.put("pods/ns10/z", pod("n", 3)).unwrap();
    producer.delete("pods/ns2/x").unwrap();
    producer.delete("pods/ns1/y").unwrap();
    assert_eq!(
        summaries(&take(&mut watch, 2)),
        [("added", "pods/ns1/y".into(), 2), ("deleted", "pods/ns1/y".into(), 5)]
    );
}
