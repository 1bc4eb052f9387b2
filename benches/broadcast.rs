//! `broadcast`: one producer, W unfiltered watchers each drained by its own thread;
//! watchcache against tokio's broadcast channel, `async-broadcast`, and the hand-rolled
//! `Vec` of crossbeam-channel senders. Throughput is deliveries (events × watchers) per
//! second.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

mod support;

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::time::{Duration, Instant};
use support::{bench_group, Pacer, Peer};
use watchcache::{Cacher, Watch, WatchOptions};

const EVENTS: u64 = 20_000;
const CAPACITY: usize = 1024;

/// Runs each consumer on its own thread and `produce` on this one; the clock runs from
/// the first send until every consumer has returned.
fn fan_out<C: FnOnce() + Send>(produce: impl FnOnce(), consumers: Vec<C>) -> Duration {
    std::thread::scope(|scope| {
        for consume in consumers {
            scope.spawn(consume);
        }
        let start = Instant::now();
        produce();
        start
    })
    .elapsed()
}

/// One watch per thread; `consume` takes the watch's `EVENTS` events.
fn watchcache(watchers: usize, consume: fn(&mut Watch<u64>)) -> Duration {
    let cacher: Cacher<u64> = Cacher::builder().build();
    let producer = cacher.producer();
    let consumers = (0..watchers)
        .map(|_| {
            let mut watch = cacher.watch(WatchOptions::new()).unwrap();
            move || consume(&mut watch)
        })
        .collect();
    fan_out(|| (0..EVENTS).for_each(|value| producer.put("key", value).unwrap()), consumers)
}

/// One owned event per call (`recv`).
fn watchcache_recv(watchers: usize) -> Duration {
    watchcache(watchers, |watch| {
        for _ in 0..EVENTS {
            black_box(watch.recv_timeout(Duration::from_secs(60)).unwrap());
        }
    })
}

/// Every ready event per call, borrowed (`visit`).
fn watchcache_visit(watchers: usize) -> Duration {
    watchcache(watchers, |watch| {
        let mut seen = 0;
        while seen < EVENTS {
            seen += watch.visit(1024, |event| _ = black_box(event)).unwrap() as u64;
        }
    })
}

fn crossbeam_channel_vec(watchers: usize) -> Duration {
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..watchers).map(|_| crossbeam_channel::bounded(CAPACITY)).unzip();
    let consumers = receivers
        .into_iter()
        .map(|receiver| {
            move || {
                for _ in 0..EVENTS {
                    black_box(receiver.recv().unwrap());
                }
            }
        })
        .collect();
    fan_out(
        || {
            for value in 0..EVENTS {
                senders.iter().for_each(|sender| sender.send(value).unwrap());
            }
        },
        consumers,
    )
}

fn tokio_broadcast(watchers: usize) -> Duration {
    let (sender, _) = tokio::sync::broadcast::channel(CAPACITY);
    let pacer = &Pacer::new(watchers, CAPACITY);
    let consumers = (0..watchers)
        .map(|index| {
            let mut receiver = sender.subscribe();
            move || {
                for count in 1..=EVENTS {
                    black_box(receiver.blocking_recv().unwrap());
                    pacer.received(index, count);
                }
            }
        })
        .collect();
    fan_out(
        || {
            for value in 0..EVENTS {
                pacer.before_send();
                sender.send(value).unwrap();
            }
        },
        consumers,
    )
}

/// `async-broadcast` waits for room instead of dropping, so it needs no pacing.
fn async_broadcast(watchers: usize) -> Duration {
    let (sender, receiver) = async_broadcast::broadcast(CAPACITY);
    let consumers = (0..watchers)
        .map(|_| {
            let mut receiver = receiver.new_receiver();
            move || {
                for _ in 0..EVENTS {
                    black_box(receiver.recv_blocking().unwrap());
                }
            }
        })
        .collect();
    drop(receiver);
    fan_out(
        || (0..EVENTS).for_each(|value| assert!(sender.broadcast_blocking(value).unwrap().is_none())),
        consumers,
    )
}

/// The harness alone: the same threads, nothing delivered.
fn harness(watchers: usize) -> Duration {
    let consumers = (0..watchers).map(|index| move || _ = black_box(index)).collect();
    fan_out(|| (0..EVENTS).for_each(|value| _ = black_box(value)), consumers)
}

fn broadcast(c: &mut Criterion) {
    let deliveries = |watchers| EVENTS * watchers as u64;
    let peers = [
        Peer { name: "watchcache_visit", elements: deliveries, run: watchcache_visit },
        Peer { name: "watchcache_recv", elements: deliveries, run: watchcache_recv },
        Peer { name: "tokio_broadcast", elements: deliveries, run: tokio_broadcast },
        Peer { name: "async_broadcast", elements: deliveries, run: async_broadcast },
        Peer { name: "crossbeam_channel_vec", elements: deliveries, run: crossbeam_channel_vec },
        Peer { name: "harness", elements: deliveries, run: harness },
    ];
    bench_group(c, "broadcast", [1usize, 16, 64], &peers);
}

criterion_group!(benches, broadcast);
criterion_main!(benches);
