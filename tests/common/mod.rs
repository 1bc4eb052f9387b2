//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;
use watchcache::{At, Cacher, Event, ListOptions, RecvTimeoutError, TryRecvError, Watch, WatchError};

/// A pod-like object: a trigger value (`node`) and a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub node: String,
    pub value: u32,
}

pub fn pod(node: &str, value: u32) -> Pod {
    Pod { node: node.to_string(), value }
}

/// A cacher indexed by `Pod::node`.
pub fn indexed() -> watchcache::CacherBuilder<Pod> {
    Cacher::builder().trigger(|pod: &Pod| Some(pod.node.as_str()))
}

/// Long enough that a waiting test never hits it unless something is broken.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The next event, or the reason the watch ended, blocking up to `PATIENCE`; panics if
/// nothing arrives.
pub fn next<T>(watch: &mut Watch<T>) -> Result<Event<T>, WatchError> {
    match watch.recv_timeout(PATIENCE) {
        Ok(event) => Ok(event),
        Err(RecvTimeoutError::Ended(reason)) => Err(reason),
        Err(RecvTimeoutError::Timeout) => panic!("the watch produced nothing in time"),
    }
}

/// Whether the watch has nothing ready now (and has not ended).
pub fn nothing_yet<T>(watch: &mut Watch<T>) -> bool {
    matches!(watch.try_recv(), Err(TryRecvError::Empty))
}

/// The reason the watch ended, if it has, without waiting.
pub fn ended<T>(watch: &mut Watch<T>) -> Option<WatchError> {
    match watch.try_recv() {
        Err(TryRecvError::Ended(reason)) => Some(reason),
        _ => None,
    }
}

/// The next `n` events; panics on an error item.
pub fn take<T>(watch: &mut Watch<T>, n: usize) -> Vec<Event<T>> {
    (0..n).map(|_| next(watch).expect("unexpected error item")).collect()
}

/// Compact form of an event for assertions: (kind, key, revision).
pub fn summary<T>(event: &Event<T>) -> (&'static str, String, u64) {
    let kind = match event {
        Event::Added { .. } => "added",
        Event::Modified { .. } => "modified",
        Event::Deleted { .. } => "deleted",
        Event::Bookmark { .. } => "bookmark",
    };
    (kind, event.key().map(|key| key.to_string()).unwrap_or_default(), event.revision())
}

pub fn summaries<T>(events: &[Event<T>]) -> Vec<(&'static str, String, u64)> {
    events.iter().map(summary).collect()
}

/// Waits until the cacher has applied `revision` (a list waits for it).
pub fn settle<T: Send + Sync + 'static>(cacher: &Cacher<T>, revision: u64) {
    cacher.list(ListOptions::new().prefix("\u{10ffff}").at(At::AtLeast(revision))).expect("revision reached");
}

/// Everything a watch yields until its end, with the ending error.
pub fn drain<T>(watch: &mut Watch<T>) -> (Vec<Event<T>>, WatchError) {
    let mut events = Vec::new();
    loop {
        match next(watch) {
            Ok(event) => events.push(event),
            Err(error) => return (events, error),
        }
    }
}

pub fn object<T>(event: &Event<T>) -> &Arc<T> {
    event.object().expect("an event with an object")
}

/// Waits until `condition` holds, for state the dispatcher updates between events
/// (counters). Polls with `yield_now`; fails after `PATIENCE`.
pub fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::yield_now();
    }
}
