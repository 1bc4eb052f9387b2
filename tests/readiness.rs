//! Readiness: Pending until the initial state is loaded, then Ready; NotReady at once
//! while pending.
mod common;
use common::*;
use std::time::Duration;
use watchcache::{Cacher, Event, List, ListError, ListOptions, Readiness, Start, WatchError, WatchOptions};

#[test]
fn pending_until_the_loader_finishes() {
    let (cacher, loader) = Cacher::<u32>::builder().build_pending();
    assert_eq!(cacher.readiness(), Readiness::Pending);
    let retry_after = Duration::from_secs(1);
    assert_eq!(cacher.watch(WatchOptions::new()).unwrap_err(), WatchError::NotReady { retry_after });
    assert_eq!(cacher.list(ListOptions::new()).unwrap_err(), ListError::NotReady { retry_after });
    assert_eq!(cacher.get("k").unwrap_err(), ListError::NotReady { retry_after });
    assert_eq!(
        cacher.watch(WatchOptions::new()).unwrap_err().to_string(),
        "cacher is not ready yet; retry after 1000 ms"
    );

    loader.put("a", 1).unwrap();
    loader.put("b", 2).unwrap();
    loader.finish().unwrap();
    wait_until("the cacher is ready", || cacher.readiness() == Readiness::Ready);
    let List { items, revision, .. } = cacher.list(ListOptions::new()).unwrap();
    assert_eq!((items.len(), revision), (2, 2), "the whole initial state is there once ready");

    let mut watch = cacher.watch(WatchOptions::new().start(Start::Snapshot)).unwrap();
    let events = take(&mut watch, 3);
    assert_eq!(summaries(&events[..2]), [("added", "a".into(), 2), ("added", "b".into(), 2)]);
    assert!(matches!(events[2], Event::Bookmark { revision: 2, initial_events_end: true }));
}

#[test]
fn a_cacher_without_a_source_is_ready_at_once() {
    let cacher: Cacher<u32> = Cacher::builder().build();
    assert_eq!(cacher.readiness(), Readiness::Ready);
    assert!(cacher.watch(WatchOptions::new()).is_ok());
}

#[test]
fn stopped_after_shutdown() {
    let cacher: Cacher<u32> = Cacher::builder().build();
    cacher.shutdown();
    assert_eq!(cacher.readiness(), Readiness::Stopped);
    assert_eq!(cacher.watch(WatchOptions::new()).unwrap_err(), WatchError::Closed);
}
