//! Bad input and overload get typed errors with lowercase messages, never a panic or a
//! lost value.
mod common;
use common::{settle, wait_until};
use std::time::Duration;
use watchcache::{
    Cacher, ListError, ListOptions, ManualClock, PublishError, RecvTimeoutError, SlowWatcherPolicy,
    TryPublishError, TryRecvError, WatchError, WatchOptions,
};

#[test]
fn try_put_on_a_full_ring_returns_the_value() {
    // Hold the dispatcher: under Terminate with a long budget it waits for a stalled
    // watcher with a one-event buffer, so the two-slot ring fills deterministically.
    let clock = ManualClock::new();
    let cacher: Cacher<String> = Cacher::builder()
        .trigger(|_: &String| Some("all"))
        .slow_watcher_policy(SlowWatcherPolicy::Terminate)
        .dispatch_budget(Duration::from_secs(600), Duration::from_secs(600))
        .incoming_capacity(2)
        .clock(clock.clone())
        .build();
    clock.advance(Duration::from_secs(1));
    let stalled = cacher.watch(WatchOptions::new().trigger("all").buffer(1)).unwrap();
    wait_until("the watch joined live dispatch", || cacher.stats().watchers_indexed == 1);
    let producer = cacher.producer();
    producer.put("k", "first".into()).unwrap();
    producer.put("k", "second".into()).unwrap();
    wait_until("the dispatcher waits for the stalled watch", || cacher.stats().watchers_blocked == 1);
    producer.put("k", "third".into()).unwrap();
    producer.put("k", "fourth".into()).unwrap();

    let error = producer.try_put("k", "fifth".into()).unwrap_err();
    assert_eq!(error.to_string(), "incoming ring is full; retry, or use a waiting publish");
    assert_eq!(error, TryPublishError::Full("fifth".to_string()), "the rejected value comes back");
    assert_eq!(producer.try_delete("k"), Err(TryPublishError::Full(())));

    // Dropping the stalled watch releases the dispatcher at once; nothing was lost.
    drop(stalled);
    settle(&cacher, 4);
    assert_eq!(cacher.get("k").unwrap(), (Some(std::sync::Arc::new("fourth".to_string())), 4));
    assert_eq!(cacher.stats().incoming_high_water, 2, "the dispatcher found the ring full when it went on");
    assert_eq!(cacher.stats().terminations, 0);
}

#[test]
fn zero_buffer_is_invalid() {
    let cacher: Cacher<u32> = Cacher::builder().build();
    let error = cacher.watch(WatchOptions::new().buffer(0)).unwrap_err();
    assert_eq!(error.to_string(), "invalid watch options: a watch buffer must hold at least one event");
}

#[test]
fn list_by_trigger_on_an_unindexed_cacher_is_invalid() {
    let cacher: Cacher<u32> = Cacher::builder().build();
    let error = cacher.list(ListOptions::new().trigger("x")).unwrap_err();
    assert!(matches!(error, ListError::InvalidOptions { .. }));
}

#[test]
fn messages_are_lowercase_without_a_trailing_period() {
    let messages = [
        WatchError::Expired { requested: 1, oldest: 5 }.to_string(),
        WatchError::TooNew { requested: 9, current: 3 }.to_string(),
        WatchError::TooSlow { resume_from: 4 }.to_string(),
        WatchError::NotReady { retry_after: std::time::Duration::from_millis(250) }.to_string(),
        WatchError::Closed.to_string(),
        ListError::TooNew { requested: 9, current: 3 }.to_string(),
        PublishError(()).to_string(),
        TryPublishError::Full(()).to_string(),
        TryPublishError::Closed(()).to_string(),
        TryRecvError::Empty.to_string(),
        TryRecvError::Ended(WatchError::Closed).to_string(),
        RecvTimeoutError::Timeout.to_string(),
    ];
    for message in messages {
        assert!(message.chars().next().is_some_and(char::is_lowercase), "{message}");
        assert!(!message.ends_with('.'), "{message}");
    }
    assert_eq!(
        WatchError::TooSlow { resume_from: 4 }.to_string(),
        "watcher was too slow and was terminated; watch again from revision 4"
    );
}

#[test]
fn errors_box_into_std_error() {
    fn publish(cacher: &Cacher<u32>) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        cacher.producer().put("k", 1)?;
        cacher.producer().delete("k")?;
        cacher.watch(WatchOptions::new())?;
        cacher.list(ListOptions::new())?;
        Ok(())
    }
    let cacher: Cacher<u32> = Cacher::builder().build();
    publish(&cacher).unwrap();
    cacher.shutdown();
    assert_eq!(publish(&cacher).unwrap_err().to_string(), "cacher is shut down; the change was not applied");
}
