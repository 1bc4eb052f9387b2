//! Bad input and overload get typed errors with lowercase messages, never a panic or a
//! lost value.
mod common;
use watchcache::{Cacher, ListError, ListOptions, PublishError, WatchError, WatchOptions};

#[test]
fn try_put_on_a_full_ring_returns_the_value() {
    let cacher: Cacher<String> = Cacher::builder().incoming_capacity(2).build();
    let producer = cacher.producer();
    // Fill faster than the dispatcher drains: at some point the ring is full.
    let mut full = None;
    for attempt in 0..1_000_000 {
        if let Err(error) = producer.try_put("k", format!("value-{attempt}")) {
            full = Some((attempt, error));
            break;
        }
    }
    let (attempt, error) = full.expect("a two-slot ring fills up");
    assert_eq!(error.to_string(), "incoming ring is full; retry, or use put to wait");
    assert_eq!(error.into_inner(), format!("value-{attempt}"), "the rejected value comes back");
    assert!(cacher.stats().incoming_high_water <= 2);
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
        PublishError::Closed(()).to_string(),
        PublishError::Full(()).to_string(),
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
