//! The basics: put, delete, get, list, revision, one watch.
mod common;
use common::*;
use watchcache::{At, Cacher, Event, List, ListOptions, Start, WatchOptions};

#[test]
fn put_get_list_and_revisions() {
    let cacher: Cacher<u32> = Cacher::builder().build();
    let producer = cacher.producer();
    assert_eq!(cacher.revision(), 0);
    producer.put("a/1", 1).unwrap();
    producer.put("a/2", 2).unwrap();
    producer.put("b/1", 3).unwrap();
    producer.put("a/1", 10).unwrap();
    settle(&cacher, 4);
    assert_eq!(cacher.revision(), 4);
    let (object, revision) = cacher.get("a/1").unwrap();
    assert_eq!((object.as_deref(), revision), (Some(&10), 4));
    assert_eq!(cacher.get("missing").unwrap().0, None);

    let List { items, revision, .. } = cacher.list(ListOptions::new().prefix("a/")).unwrap();
    let items: Vec<_> = items.iter().map(|(key, value)| (key.to_string(), **value)).collect();
    assert_eq!(items, [("a/1".to_string(), 10), ("a/2".to_string(), 2)]);
    assert_eq!(revision, 4);

    let items = cacher.list(ListOptions::new().predicate(|value: &u32| *value > 2)).unwrap().items;
    let keys: Vec<_> = items.iter().map(|(key, _)| key.to_string()).collect();
    assert_eq!(keys, ["a/1", "b/1"], "key order, predicate applied");
}

#[test]
fn added_modified_deleted_on_one_watch() {
    let cacher: Cacher<u32> = Cacher::builder().build();
    let producer = cacher.producer();
    let mut watch = cacher.watch(WatchOptions::new().start(Start::Revision(0))).unwrap();
    producer.put("k", 1).unwrap();
    producer.put("k", 2).unwrap();
    producer.delete("k").unwrap();
    let events = take(&mut watch, 3);
    assert_eq!(
        summaries(&events),
        [("added", "k".into(), 1), ("modified", "k".into(), 2), ("deleted", "k".into(), 3)]
    );
    assert_eq!(**object(&events[2]), 2, "a delete carries the last state");
}

#[test]
fn delete_of_missing_key_is_dropped_and_counted() {
    let cacher: Cacher<u32> = Cacher::builder().build();
    let producer = cacher.producer();
    let mut watch = cacher.watch(WatchOptions::new()).unwrap();
    producer.delete("nothing-here").unwrap();
    producer.put("k", 1).unwrap();
    let event = next(&mut watch).unwrap();
    assert_eq!(summary(&event), ("added", "k".into(), 1), "the dropped delete took no revision");
    assert_eq!(cacher.stats().deletes_of_missing_keys, 1);
}

#[test]
fn list_at_least_waits_for_the_revision() {
    let cacher: Cacher<u32> = Cacher::builder().build();
    let producer = cacher.producer();
    let lister = {
        let cacher = cacher.clone();
        std::thread::spawn(move || cacher.list(ListOptions::new().at(At::AtLeast(3))).unwrap())
    };
    for value in 0..3 {
        producer.put(format!("k{value}"), value).unwrap();
    }
    let List { items, revision, .. } = lister.join().unwrap();
    assert!(revision >= 3);
    assert_eq!(items.len(), 3);
}

#[test]
fn stats_report_the_state() {
    let cacher: Cacher<u32> = Cacher::builder().incoming_capacity(8).window_capacity(2).build();
    let producer = cacher.producer();
    let _watch = cacher.watch(WatchOptions::new()).unwrap();
    for value in 0..5 {
        producer.put(format!("k{value}"), value).unwrap();
    }
    settle(&cacher, 5);
    let stats = cacher.stats();
    assert_eq!(stats.revision, 5);
    assert_eq!(stats.objects, 5);
    assert_eq!((stats.window_len, stats.window_oldest, stats.window_capacity), (2, 3, 2));
    assert_eq!(stats.incoming_capacity, 8);
    assert!(stats.incoming_high_water >= 1);
    assert_eq!(stats.watchers_unindexed, 1);
    assert_eq!(stats.watchers_indexed, 0);
}

#[test]
fn event_accessors() {
    let bookmark: Event<u32> = Event::Bookmark { revision: 7, initial_events_end: false };
    assert_eq!((bookmark.revision(), bookmark.key(), bookmark.object()), (7, None, None));
}
