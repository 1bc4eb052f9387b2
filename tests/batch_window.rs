//! The batch window: a burst of changes is applied as one batch once the window has
//! passed on the cacher's clock; shutdown does not wait for it.
mod common;
use common::*;
use std::time::Duration;
use watchcache::{Cacher, ManualClock, Start, WatchOptions};

fn windowed(clock: &ManualClock) -> Cacher<u32> {
    Cacher::builder().batch_window(Duration::from_secs(1)).clock(clock.clone()).build()
}

#[test]
fn a_burst_is_one_batch_once_the_window_has_passed() {
    let clock = ManualClock::new();
    let cacher = windowed(&clock);
    let mut watch = cacher.watch(WatchOptions::new().start(Start::Revision(0))).unwrap();
    let producer = cacher.producer();
    for value in 1..=3 {
        producer.put(format!("k{value}"), value).unwrap();
    }
    // The manual clock stands still, so no window can pass before all three are in the
    // ring. The window starts when the dispatcher sees the first change, which may be
    // after an advance: advance until they are applied.
    wait_until("the burst is applied", || {
        clock.advance(Duration::from_secs(1));
        cacher.revision() == 3
    });
    assert_eq!(cacher.stats().batches, 1, "one batch for the burst");
    assert_eq!(take(&mut watch, 3).iter().map(|event| event.revision()).collect::<Vec<_>>(), [1, 2, 3]);
}

#[test]
fn shutdown_does_not_wait_for_the_window() {
    let clock = ManualClock::new();
    let cacher = windowed(&clock);
    let mut watch = cacher.watch(WatchOptions::new().start(Start::Revision(0))).unwrap();
    cacher.producer().put("k", 1).unwrap();
    // The clock never advances: only the shutdown can end the window.
    cacher.shutdown();
    assert_eq!(cacher.revision(), 1, "the change was applied before the dispatcher stopped");
    let (events, end) = drain(&mut watch);
    assert_eq!((events.len(), end), (1, watchcache::WatchError::Closed));
}
