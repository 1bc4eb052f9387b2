//! Bookmarks: opt-in, periodic on the cacher's clock, carrying the revision a watch is
//! complete up to; never a cause of termination.
mod common;
use common::*;
use std::time::Duration;
use watchcache::{Cacher, Event, ManualClock, SlowWatcherPolicy, WatchOptions};

const PERIOD: Duration = Duration::from_secs(60);

fn bookmark_revision<T>(event: &Event<T>) -> Option<u64> {
    match event {
        Event::Bookmark { revision, initial_events_end: false } => Some(*revision),
        _ => None,
    }
}

#[test]
fn idle_watches_get_a_bookmark_each_period() {
    let clock = ManualClock::new();
    let cacher = indexed().clock(clock.clone()).bookmark_period(PERIOD).build();
    let producer = cacher.producer();
    let mut unindexed = cacher.watch(WatchOptions::new().bookmarks(true)).unwrap();
    let mut indexed = cacher.watch(WatchOptions::new().trigger("n").bookmarks(true)).unwrap();
    let mut without = cacher.watch(WatchOptions::new().trigger("other")).unwrap();
    producer.put("a", pod("elsewhere", 1)).unwrap();
    producer.put("b", pod("elsewhere", 2)).unwrap();
    assert_eq!(summaries(&take(&mut unindexed, 2)).len(), 2);

    clock.advance(PERIOD);
    assert_eq!(bookmark_revision(&next(&mut unindexed).unwrap()), Some(2));
    assert_eq!(
        bookmark_revision(&next(&mut indexed).unwrap()),
        Some(2),
        "complete up to 2 though it saw nothing"
    );

    // The bookmarks fired; a watch that did not ask for them sees only the next event.
    producer.put("c", pod("other", 3)).unwrap();
    assert_eq!(summary(&next(&mut without).unwrap()), ("added", "c".into(), 3));

    clock.advance(PERIOD);
    assert_eq!(bookmark_revision(&next(&mut indexed).unwrap()), Some(3), "the next period");
}

#[test]
fn a_bookmark_never_overtakes_buffered_events() {
    let clock = ManualClock::new();
    let cacher = indexed().clock(clock.clone()).bookmark_period(PERIOD).build();
    let producer = cacher.producer();
    let mut watch = cacher.watch(WatchOptions::new().trigger("n").bookmarks(true).buffer(10)).unwrap();
    wait_until("the watch joined live dispatch", || cacher.stats().watchers_indexed == 1);
    for value in 1..=3 {
        producer.put(format!("p{value}"), pod("n", value)).unwrap();
    }
    settle(&cacher, 3);
    clock.advance(PERIOD);
    let events = take(&mut watch, 4);
    assert_eq!(events.iter().map(|event| event.revision()).collect::<Vec<_>>(), [1, 2, 3, 3]);
    assert_eq!(bookmark_revision(&events[3]), Some(3));
}

#[test]
fn a_full_buffer_skips_nothing_and_terminates_nobody() {
    let clock = ManualClock::new();
    let cacher = indexed()
        .clock(clock.clone())
        .bookmark_period(PERIOD)
        .slow_watcher_policy(SlowWatcherPolicy::Terminate)
        .build();
    let producer = cacher.producer();
    let mut watch = cacher.watch(WatchOptions::new().trigger("n").bookmarks(true).buffer(1)).unwrap();
    wait_until("the watch joined live dispatch", || cacher.stats().watchers_indexed == 1);
    producer.put("p", pod("n", 1)).unwrap();
    settle(&cacher, 1);
    clock.advance(PERIOD * 3);
    producer.put("q", pod("elsewhere", 2)).unwrap();
    settle(&cacher, 2);
    assert_eq!(summary(&next(&mut watch).unwrap()), ("added", "p".into(), 1));
    let bookmark = next(&mut watch).unwrap();
    assert!(bookmark_revision(&bookmark).is_some_and(|revision| revision >= 1));
    assert_eq!(cacher.stats().terminations, 0);
}

#[test]
fn bookmarks_are_opt_in() {
    let clock = ManualClock::new();
    let cacher: Cacher<u32> = Cacher::builder().clock(clock.clone()).bookmark_period(PERIOD).build();
    let mut with = cacher.watch(WatchOptions::new().bookmarks(true)).unwrap();
    let mut without = cacher.watch(WatchOptions::new()).unwrap();
    clock.advance(PERIOD);
    assert_eq!(bookmark_revision(&next(&mut with).unwrap()), Some(0));
    cacher.producer().put("k", 1).unwrap();
    assert_eq!(summary(&next(&mut without).unwrap()), ("added", "k".into(), 1));
}
