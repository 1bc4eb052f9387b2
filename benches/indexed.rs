//! `indexed`: N trigger-indexed watchers, each event matching exactly one of them;
//! watchcache's trigger index against the designs that test every watcher's filter per
//! event: the hand-rolled loop (filter in the sender's loop) and tokio's broadcast
//! channel (filter in each receiver). Consumers are tokio tasks (N up to 100,000).
//! Throughput is deliveries per second (here equal to events per second). The peers'
//! cost per event grows with N, so they run fewer events at large N. A second watchcache
//! row keeps all N watchers registered but sends every event to the first 100 of them.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

mod support;

use criterion::{criterion_group, criterion_main, Criterion};
use futures::StreamExt;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{
    bench_group, indexed_cacher, join_all, node, pods, publish_and_join, runtime, wait_registered, Peer, Pod,
};
use watchcache::WatchOptions;

const EVENTS: u64 = 20_000;
/// The watchers that `watchcache_events_on_100` sends every event to.
const HOT_WATCHERS: usize = 100;

/// How many of `events` go to watcher `index` (events are dealt round-robin).
fn matches_of(index: usize, events: u64, watchers: usize) -> u64 {
    let watchers = watchers as u64;
    events / watchers + u64::from((index as u64) < events % watchers)
}

/// Enough events that every watcher gets at least one (a watch that expects none would
/// end at once and leave the index before the clock starts).
fn all_events(watchers: usize) -> u64 {
    EVENTS.max(watchers as u64)
}

/// What the peers whose cost grows with N can run in a few hundred milliseconds.
fn scaled_events(watchers: usize) -> u64 {
    (2_000_000 / watchers as u64).clamp(200, EVENTS)
}

/// `watchers` indexed watches, events dealt round-robin to the first `targets` of them;
/// the others stay registered and idle.
fn watchcache(watchers: usize, targets: usize) -> Duration {
    let events = all_events(targets);
    let cacher = indexed_cacher().build();
    let producer = cacher.producer();
    let mut idle = Vec::new();
    let mut tasks = Vec::new();
    for index in 0..watchers {
        let mut watch = cacher.watch(WatchOptions::new().trigger(node(index))).unwrap();
        if index >= targets {
            idle.push(watch);
            continue;
        }
        let expected = matches_of(index, events, targets);
        tasks.push(runtime().spawn(async move {
            for _ in 0..expected {
                black_box(watch.next().await.unwrap().unwrap());
            }
        }));
    }
    wait_registered(&cacher, watchers);
    publish_and_join(&producer, pods(events, targets), tasks)
}

fn watchcache_all_matched(watchers: usize) -> Duration {
    watchcache(watchers, watchers)
}

/// Separates the cost of how many watchers are registered from the cost of how many
/// distinct watchers the events reach.
fn watchcache_events_on_100(watchers: usize) -> Duration {
    watchcache(watchers, HOT_WATCHERS)
}

fn filter_loop(watchers: usize) -> Duration {
    let events = scaled_events(watchers);
    let (senders, tasks): (Vec<_>, Vec<_>) = (0..watchers)
        .map(|index| {
            let (sender, mut receiver) = tokio::sync::mpsc::channel::<Arc<Pod>>(1024);
            let expected = matches_of(index, events, watchers);
            let task = runtime().spawn(async move {
                for _ in 0..expected {
                    black_box(receiver.recv().await.unwrap());
                }
            });
            ((node(index), sender), task)
        })
        .unzip();
    let workload = pods(events, watchers);
    let start = Instant::now();
    for (_, pod) in workload {
        let pod = Arc::new(pod);
        for (filter, sender) in &senders {
            if *filter == pod.node {
                sender.blocking_send(pod.clone()).unwrap();
            }
        }
    }
    join_all(tasks);
    start.elapsed()
}

/// The channel holds every event of the run, so no receiver can be lapped.
fn tokio_broadcast_filter(watchers: usize) -> Duration {
    let events = scaled_events(watchers);
    let (sender, _) = tokio::sync::broadcast::channel::<Arc<Pod>>(events as usize);
    let tasks = (0..watchers)
        .map(|index| {
            let (mut receiver, filter) = (sender.subscribe(), node(index));
            let expected = matches_of(index, events, watchers);
            runtime().spawn(async move {
                let mut matched = 0;
                while matched < expected {
                    let pod = receiver.recv().await.unwrap();
                    if pod.node == filter {
                        black_box(pod);
                        matched += 1;
                    }
                }
            })
        })
        .collect();
    let workload = pods(events, watchers);
    let start = Instant::now();
    for (_, pod) in workload {
        sender.send(Arc::new(pod)).unwrap();
    }
    join_all(tasks);
    start.elapsed()
}

/// The harness alone: the tasks and the producer loop, nothing delivered.
fn harness(watchers: usize) -> Duration {
    let tasks = (0..watchers).map(|index| runtime().spawn(async move { _ = black_box(index) })).collect();
    let workload = pods(all_events(watchers), watchers);
    let start = Instant::now();
    workload.into_iter().for_each(|entry| drop(black_box(entry)));
    join_all(tasks);
    start.elapsed()
}

fn indexed(c: &mut Criterion) {
    let peers = [
        Peer { name: "watchcache", elements: all_events, run: watchcache_all_matched },
        Peer {
            name: "watchcache_events_on_100",
            elements: |_| all_events(HOT_WATCHERS),
            run: watchcache_events_on_100,
        },
        Peer { name: "filter_loop", elements: scaled_events, run: filter_loop },
        Peer { name: "tokio_broadcast_filter", elements: scaled_events, run: tokio_broadcast_filter },
        Peer { name: "harness", elements: all_events, run: harness },
    ];
    bench_group(c, "indexed", [100usize, 10_000, 100_000], &peers);
}

criterion_group!(benches, indexed);
criterion_main!(benches);
