//! Compile-time checks of the handles' thread-safety and shape.
use watchcache::{Cacher, Event, Producer, Watch, WatchError};

fn send<T: Send>() {}
fn sync<T: Sync>() {}
fn unpin<T: Unpin>() {}
fn clone<T: Clone>() {}
fn stream<S: futures_core::Stream<Item = Result<Event<u32>, WatchError>>>() {}

#[test]
fn handles_are_thread_safe() {
    send::<Cacher<u32>>();
    sync::<Cacher<u32>>();
    clone::<Cacher<u32>>();
    send::<Producer<u32>>();
    sync::<Producer<u32>>();
    clone::<Producer<u32>>();
    send::<Watch<u32>>();
    unpin::<Watch<u32>>();
    stream::<Watch<u32>>();
    send::<WatchError>();
    sync::<WatchError>();
}

#[test]
fn events_clone_without_cloning_objects() {
    /// Shared by the cacher, never cloned: an event of it still clones.
    struct NotClone;
    clone::<Event<NotClone>>();
    clone::<watchcache::Entry<NotClone>>();
    send::<Event<u32>>();
    sync::<Event<u32>>();
}

fn sendable_future<F: std::future::Future + Send>(_: F) {}

#[test]
fn async_publishes_can_be_spawned() {
    let cacher: Cacher<u32> = Cacher::builder().build();
    let producer = cacher.producer();
    // Not awaited: only their type is checked (a multi-threaded runtime's `spawn`
    // needs `Send` futures).
    sendable_future(producer.put_async("k", 1));
    sendable_future(producer.delete_async("k"));
}
