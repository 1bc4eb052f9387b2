//! The trigger index: indexed watches get only their value's events; the others read
//! the window; counts show which is which.
mod common;
use common::*;
use watchcache::{Cacher, Start, WatchError, WatchOptions};

#[test]
fn indexed_watches_get_only_their_trigger_value() {
    let cacher = indexed().build();
    let producer = cacher.producer();
    let nodes = ["n0", "n1", "n2", "n3"];
    let mut watches: Vec<_> = nodes
        .iter()
        .map(|node| cacher.watch(WatchOptions::new().trigger(*node).start(Start::Revision(0))).unwrap())
        .collect();
    let mut everything = cacher.watch(WatchOptions::new().start(Start::Revision(0))).unwrap();
    wait_until("all joined live dispatch", || cacher.stats().watchers_indexed == 4);
    for value in 0..40u32 {
        producer.put(format!("pod-{value}"), pod(nodes[value as usize % 4], value)).unwrap();
    }
    for (index, watch) in watches.iter_mut().enumerate() {
        let events = take(watch, 10);
        assert!(events.iter().all(|event| object(event).node == nodes[index]));
        let values: Vec<_> = events.iter().map(|event| object(event).value).collect();
        assert_eq!(values, (0..10).map(|i| i * 4 + index as u32).collect::<Vec<_>>());
    }
    assert_eq!(take(&mut everything, 40).len(), 40);
    let stats = cacher.stats();
    assert_eq!((stats.watchers_indexed, stats.watchers_unindexed), (4, 1));
}

#[test]
fn dropped_indexed_watch_leaves_the_index() {
    let cacher = indexed().build();
    let producer = cacher.producer();
    let mut keep = cacher.watch(WatchOptions::new().trigger("n")).unwrap();
    let gone = cacher.watch(WatchOptions::new().trigger("n")).unwrap();
    wait_until("both joined live dispatch", || cacher.stats().watchers_indexed == 2);
    producer.put("a", pod("n", 1)).unwrap();
    next(&mut keep).unwrap();
    drop(gone);
    // The stop is queued before `b` is published, so the dispatcher handles it at the
    // latest between `b`'s batch and the next one. `settle` waits for `b`'s batch to end;
    // `c` then lands in a later batch, and the counters published with `c`'s state (the
    // `settle` after it) count the watchers indexed after the stop.
    producer.put("b", pod("n", 2)).unwrap();
    settle(&cacher, 2);
    producer.put("c", pod("n", 3)).unwrap();
    settle(&cacher, 3);
    assert_eq!(cacher.stats().watchers_indexed, 1, "removed between events");
    assert_eq!(summaries(&take(&mut keep, 2)), [("added", "b".into(), 2), ("added", "c".into(), 3)]);
}

#[test]
fn trigger_on_an_unindexed_cacher_is_invalid() {
    let cacher: Cacher<Pod> = Cacher::builder().build();
    let error = cacher.watch(WatchOptions::new().trigger("n")).unwrap_err();
    assert!(matches!(error, WatchError::InvalidOptions { .. }));
    assert_eq!(
        error.to_string(),
        "invalid watch options: a trigger value needs a cacher built with a trigger function"
    );
}

#[test]
fn objects_without_a_trigger_value_reach_unindexed_watches_only() {
    let cacher: Cacher<Pod> =
        Cacher::builder().trigger(|pod: &Pod| (!pod.node.is_empty()).then_some(pod.node.as_str())).build();
    let producer = cacher.producer();
    let mut on_n = cacher.watch(WatchOptions::new().trigger("n").start(Start::Revision(0))).unwrap();
    let mut all = cacher.watch(WatchOptions::new().start(Start::Revision(0))).unwrap();
    producer.put("unscheduled", pod("", 1)).unwrap();
    producer.put("scheduled", pod("n", 2)).unwrap();
    assert_eq!(summaries(&take(&mut on_n, 1)), [("added", "scheduled".into(), 2)]);
    assert_eq!(take(&mut all, 2).len(), 2);
}
