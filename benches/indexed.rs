//! `indexed`: N trigger-indexed watchers, each event matching exactly one of them;
//! watchcache's trigger index against the designs that test every watcher's filter per
//! event: the hand-rolled loop (filter in the sender's loop) and tokio's broadcast
//! channel (filter in each receiver). Consumers are tokio tasks (N up to 100,000).
//!
//! Every peer gets the same events at each N: `events(N)`, dealt round-robin over the N
//! watchers, fewer at large N (the peers' cost per event grows with N). Every broadcast
//! receiver reads every event to the end and filters it; a watchcache watch that is dealt
//! none stays registered, idle. Throughput is deliveries per second (one per event).
//!
//! A third design, `channel_per_watcher`, is the floor of any index: a hash map from
//! trigger value to one tokio channel per watcher, each event sent to its watcher's
//! channel and received in batches, with no cache behind it. Its own ratio across N is
//! what reaching N distinct tasks costs the runtime, whatever indexes them.
//!
//! A second watchcache row keeps all N watchers registered but sends `HOT_EVENTS` events
//! to the first 100 of them, the same work at every N: its ratio across N is what the
//! registered watchers cost (the trigger index), apart from how many distinct consumers
//! the events wake. Both rows run again in upstream mode (`_upstream`: the same events
//! at sparse upstream revisions).

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

mod support;

use criterion::{criterion_group, criterion_main, Criterion};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{
    bench_group, indexed_cacher, node, pods, publish_and_join, wait_registered, Mode, Peer, Pod, Tasks,
    Writer,
};
use watchcache::WatchOptions;

/// Events of the `events_on_100` row, at every N.
const HOT_EVENTS: u64 = 20_000;
/// The watchers that row sends every event to.
const HOT_WATCHERS: usize = 100;
/// The most events a batch consumer takes per call.
const BATCH: usize = 256;

/// The events every peer gets at N: what the peers whose cost grows with N can run in a
/// few hundred milliseconds, between 200 and 20,000.
fn events(watchers: usize) -> u64 {
    (2_000_000 / watchers as u64).clamp(200, 20_000)
}

/// How many of `events` go to watcher `index` (events are dealt round-robin).
fn matches_of(index: usize, events: u64, watchers: usize) -> u64 {
    let watchers = watchers as u64;
    events / watchers + u64::from((index as u64) < events % watchers)
}

/// `watchers` indexed watches, `events` dealt round-robin to the first `targets`; the
/// watches dealt none stay registered and idle.
fn watchcache(mode: Mode, watchers: usize, targets: usize, events: u64) -> Duration {
    let (cacher, mut writer) = Writer::build(indexed_cacher(), mode);
    let mut idle = Vec::new();
    let mut work = Vec::new();
    for index in 0..watchers {
        let mut watch = cacher.watch(WatchOptions::new().trigger(node(index))).unwrap();
        let expected = if index < targets { matches_of(index, events, targets) } else { 0 };
        if expected == 0 {
            idle.push(watch);
            continue;
        }
        work.push(async move {
            let mut seen = 0;
            while seen < expected {
                seen += watch.visit_async(BATCH, |event| _ = black_box(event)).await.unwrap() as u64;
            }
        });
    }
    wait_registered(&cacher, watchers);
    publish_and_join(&mut writer, pods(events, targets), Tasks::spawn(work))
}

fn watchcache_all_reached(mode: Mode, watchers: usize) -> Duration {
    watchcache(mode, watchers, watchers, events(watchers))
}

fn watchcache_events_on_100(mode: Mode, watchers: usize) -> Duration {
    watchcache(mode, watchers, HOT_WATCHERS, HOT_EVENTS)
}

fn filter_loop(watchers: usize) -> Duration {
    let events = events(watchers);
    let mut senders = Vec::new();
    let mut work = Vec::new();
    for index in 0..watchers {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Arc<Pod>>(1024);
        let expected = matches_of(index, events, watchers);
        senders.push((node(index), sender));
        work.push(async move {
            for _ in 0..expected {
                black_box(receiver.recv().await.unwrap());
            }
        });
    }
    let tasks = Tasks::spawn(work);
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
    tasks.finish(start)
}

/// One bounded channel per watcher behind a hash map from trigger value to sender; the
/// receivers take batches, as the watchcache rows do.
fn channel_per_watcher(watchers: usize) -> Duration {
    let events = events(watchers);
    let mut senders = HashMap::with_capacity(watchers);
    let mut work = Vec::new();
    for index in 0..watchers {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Arc<Pod>>(1024);
        let expected = matches_of(index, events, watchers);
        senders.insert(node(index), sender);
        work.push(async move {
            let mut batch = Vec::with_capacity(BATCH);
            let mut seen = 0;
            while seen < expected {
                seen += receiver.recv_many(&mut batch, BATCH).await as u64;
                black_box(&batch);
                batch.clear();
            }
        });
    }
    let tasks = Tasks::spawn(work);
    let workload = pods(events, watchers);
    let start = Instant::now();
    for (_, pod) in workload {
        senders[&pod.node].blocking_send(Arc::new(pod)).unwrap();
    }
    tasks.finish(start)
}

/// The channel holds every event of the run, so no receiver can be lapped; every
/// receiver reads all of them and keeps its own.
fn tokio_broadcast_filter(watchers: usize) -> Duration {
    let events = events(watchers);
    let (sender, _) = tokio::sync::broadcast::channel::<Arc<Pod>>(events as usize);
    let work = (0..watchers)
        .map(|index| {
            let (mut receiver, filter) = (sender.subscribe(), node(index));
            async move {
                for _ in 0..events {
                    let pod = receiver.recv().await.unwrap();
                    if pod.node == filter {
                        black_box(pod);
                    }
                }
            }
        })
        .collect();
    let tasks = Tasks::spawn(work);
    let workload = pods(events, watchers);
    let start = Instant::now();
    for (_, pod) in workload {
        sender.send(Arc::new(pod)).unwrap();
    }
    tasks.finish(start)
}

/// The harness alone: the tasks and the producer loop, nothing delivered.
fn harness(watchers: usize) -> Duration {
    let tasks = Tasks::spawn((0..watchers).map(|index| async move { _ = black_box(index) }).collect());
    let workload = pods(events(watchers), watchers);
    let start = Instant::now();
    workload.into_iter().for_each(|entry| drop(black_box(entry)));
    tasks.finish(start)
}

fn indexed(c: &mut Criterion) {
    let peers = [
        Peer { name: "watchcache", elements: events, run: |n| watchcache_all_reached(Mode::Embedded, n) },
        Peer {
            name: "watchcache_upstream",
            elements: events,
            run: |n| watchcache_all_reached(Mode::Upstream, n),
        },
        Peer {
            name: "watchcache_events_on_100",
            elements: |_| HOT_EVENTS,
            run: |n| watchcache_events_on_100(Mode::Embedded, n),
        },
        Peer {
            name: "watchcache_upstream_events_on_100",
            elements: |_| HOT_EVENTS,
            run: |n| watchcache_events_on_100(Mode::Upstream, n),
        },
        Peer { name: "filter_loop", elements: events, run: filter_loop },
        Peer { name: "channel_per_watcher", elements: events, run: channel_per_watcher },
        Peer { name: "tokio_broadcast_filter", elements: events, run: tokio_broadcast_filter },
        Peer { name: "harness", elements: events, run: harness },
    ];
    bench_group(c, "indexed", [100usize, 10_000, 100_000], &peers);
}

criterion_group!(benches, indexed);
criterion_main!(benches);
