//! Conditional writes decided by the dispatcher in order, revisions stamped into objects,
//! and lists at an exact past revision, a page at a time.

mod common;
use common::settle;
use futures::executor::block_on;
use std::sync::Arc;
use watchcache::{At, Cacher, ConditionalError, List, ListError, ListOptions, Start, WatchOptions};

#[derive(Debug, PartialEq)]
struct Versioned {
    revision: u64,
    value: u32,
}

fn versioned(value: u32) -> Versioned {
    Versioned { revision: 0, value }
}

fn stamped_cacher() -> Cacher<Versioned> {
    Cacher::builder().stamp_revision(|object: &mut Versioned, revision| object.revision = revision).build()
}

#[test]
fn every_read_sees_the_revision_that_wrote_the_object() {
    let cacher = stamped_cacher();
    let producer = cacher.producer();
    producer.put("a", versioned(1)).unwrap();
    producer.put("b", versioned(2)).unwrap();
    producer.put("a", versioned(3)).unwrap();
    let List { items: objects, revision, .. } = cacher.list(ListOptions::new().at(At::AtLeast(3))).unwrap();
    assert_eq!(revision, 3);
    let revisions: Vec<(&str, u64)> = objects.iter().map(|(key, object)| (&**key, object.revision)).collect();
    assert_eq!(revisions, [("a", 3), ("b", 2)]);
    let mut watch = cacher.watch(WatchOptions::new().start(Start::Revision(0))).unwrap();
    for expected in 1..=3 {
        let event = watch.recv().unwrap();
        assert_eq!(event.object().unwrap().revision, expected, "an event's object carries its own revision");
    }
}

#[test]
fn a_compare_and_swap_is_decided_in_order_and_answered_after_publication() {
    let cacher = stamped_cacher();
    let producer = cacher.producer();
    block_on(async {
        let created = producer.put_if("k", versioned(1), |current| current.is_none()).await.unwrap();
        assert_eq!((created.revision, created.prev.is_none()), (1, true));
        assert_eq!(created.object.as_deref(), Some(&Versioned { revision: 1, value: 1 }));
        // The caller reads its own write at once.
        assert_eq!(cacher.get("k").unwrap().0.unwrap().value, 1);

        let again = producer.put_if("k", versioned(9), |current| current.is_none()).await;
        match again {
            Err(ConditionalError::Rejected { current: Some(current) }) => assert_eq!(current.value, 1),
            other => panic!("expected a rejection with the current object, got {other:?}"),
        }

        // Two writers both read revision 1; the first swap wins, the second is stale.
        let expected = 1;
        let first = producer.put_if("k", versioned(2), move |c| c.is_some_and(|c| c.revision == expected));
        let second = producer.put_if("k", versioned(3), move |c| c.is_some_and(|c| c.revision == expected));
        let (first, second) = futures::join!(first, second);
        let won = [first.is_ok(), second.is_ok()];
        assert_eq!(won.iter().filter(|won| **won).count(), 1, "exactly one swap wins: {won:?}");
        assert_eq!(cacher.revision(), 2, "a rejected change takes no revision");
    });
}

#[test]
fn a_conditional_delete_needs_the_key_and_its_check() {
    let cacher = stamped_cacher();
    let producer = cacher.producer();
    block_on(async {
        let missing = producer.delete_if("k", |_| true).await;
        assert!(matches!(missing, Err(ConditionalError::Rejected { current: None })));
        producer.put("k", versioned(1)).unwrap();
        let refused = producer.delete_if("k", |current| current.value == 2).await;
        assert!(matches!(refused, Err(ConditionalError::Rejected { current: Some(_) })));
        let deleted = producer.delete_if("k", |current| current.value == 1).await.unwrap();
        assert_eq!(deleted.prev.unwrap().value, 1);
        assert!(deleted.object.is_none());
        assert_eq!(cacher.get("k").unwrap().0, None);
    });
}

#[test]
fn a_conditional_write_after_shutdown_is_closed() {
    let cacher = stamped_cacher();
    let producer = cacher.producer();
    cacher.shutdown();
    let result = block_on(producer.put_if("k", versioned(1), |_| true));
    assert!(matches!(result, Err(ConditionalError::Closed)));
}

#[test]
fn an_exact_list_rolls_the_state_back_through_the_window() {
    let cacher: Cacher<u32> = Cacher::builder().window_capacity(64).build();
    let producer = cacher.producer();
    // Revisions 1..=30: puts over five keys, with a delete every seventh change.
    let mut states = vec![std::collections::BTreeMap::new()];
    for step in 1..=30u32 {
        let key = format!("k{}", step % 5);
        let mut state = states.last().unwrap().clone();
        if step % 7 == 0 && state.contains_key(&key) {
            producer.delete(key.as_str()).unwrap();
            state.remove(&key);
        } else {
            producer.put(key.as_str(), step).unwrap();
            state.insert(key, step);
        }
        states.push(state);
    }
    let latest = cacher.list(ListOptions::new().at(At::AtLeast(states.len() as u64 - 1))).unwrap().revision;
    for (revision, expected) in states.iter().enumerate().skip(1) {
        let List { items: objects, revision: at, .. } =
            cacher.list(ListOptions::new().at(At::Exact(revision as u64))).unwrap();
        assert_eq!(at, revision as u64);
        let listed: std::collections::BTreeMap<String, u32> =
            objects.iter().map(|(key, value)| (key.to_string(), **value)).collect();
        assert_eq!(&listed, expected, "the state at revision {revision} (latest {latest})");
    }
}

#[test]
fn an_exact_list_older_than_the_window_is_expired() {
    let cacher: Cacher<u32> = Cacher::builder().window_capacity(4).build();
    let producer = cacher.producer();
    // One published state per put: the window keeps everything after the last one
    // published, so only then does its capacity decide.
    for value in 0..20 {
        producer.put("k", value).unwrap();
        settle(&cacher, u64::from(value) + 1);
    }
    match cacher.list(ListOptions::new().at(At::Exact(2))) {
        Err(ListError::Expired { requested: 2, oldest }) => {
            assert!(oldest > 2);
            let at = cacher.list(ListOptions::new().at(At::Exact(oldest))).unwrap().revision;
            assert_eq!(at, oldest, "the oldest revision named is listable");
        }
        other => panic!("expected Expired, got {other:?}"),
    }
}

#[test]
fn pages_after_a_key_at_one_revision_add_up_to_the_whole_list() {
    let cacher: Cacher<u32> = Cacher::builder().build();
    let producer = cacher.producer();
    for at in 0..23 {
        producer.put(format!("p/{at:02}"), at).unwrap();
    }
    producer.put("q/other", 0).unwrap();
    let revision = cacher.list(ListOptions::new().at(At::AtLeast(24))).unwrap().revision;
    let mut pages = Vec::new();
    let mut after: Option<Arc<str>> = None;
    loop {
        let mut options = ListOptions::new().prefix("p/").limit(5).at(At::Exact(revision));
        if let Some(key) = after.take() {
            options = options.after(key);
        }
        let page = cacher.list(options).unwrap().items;
        // Writes between pages do not show: every page is at `revision`.
        producer.put(format!("p/{:02}x", pages.len()), 99).unwrap();
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        pages.extend(page.iter().map(|(_, value)| **value));
    }
    assert_eq!(pages, (0..23).collect::<Vec<u32>>());
}
