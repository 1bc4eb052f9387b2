//! `shapes`: the workloads the Kubernetes cacher is measured on (PERF.md) — 1, 10,
//! 100 and 1,000 unfiltered watchers, and 1,000 filtered watchers of which 1% match each
//! event (here trigger-indexed: 100 trigger values, 10 watchers each). Consumers are
//! tokio tasks. The peer is tokio's broadcast channel (filtering in the receiver for the
//! filtered shape). Throughput is deliveries per second.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

mod support;

use criterion::{criterion_group, criterion_main, Criterion};
use futures::StreamExt;
use std::fmt;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{
    bench_group, indexed_cacher, join_all, node, pods, publish_and_join, runtime, wait_registered, Pacer,
    Peer, Pod,
};
use watchcache::WatchOptions;

const EVENTS: u64 = 10_000;
const CAPACITY: usize = 1024;
/// Trigger values in the filtered shape: each event matches 1% of 1,000 watchers.
const NODES: usize = 100;

#[derive(Clone, Copy)]
enum Shape {
    Unfiltered(usize),
    Filtered,
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Unfiltered(watchers) => write!(f, "{watchers}_unfiltered"),
            Shape::Filtered => write!(f, "1000_filtered_1pct"),
        }
    }
}

impl Shape {
    fn watchers(self) -> usize {
        match self {
            Shape::Unfiltered(watchers) => watchers,
            Shape::Filtered => 1_000,
        }
    }

    /// The trigger value watcher `index` asks for, if the shape filters.
    fn filter(self, index: usize) -> Option<String> {
        matches!(self, Shape::Filtered).then(|| node(index % NODES))
    }

    fn deliveries_per_watcher(self) -> u64 {
        match self {
            Shape::Unfiltered(_) => EVENTS,
            Shape::Filtered => EVENTS / NODES as u64,
        }
    }

    fn deliveries(self) -> u64 {
        self.deliveries_per_watcher() * self.watchers() as u64
    }
}

fn watchcache(shape: Shape) -> Duration {
    let cacher = indexed_cacher().build();
    let producer = cacher.producer();
    let tasks = (0..shape.watchers())
        .map(|index| {
            let options = match shape.filter(index) {
                Some(value) => WatchOptions::new().trigger(value),
                None => WatchOptions::new(),
            };
            let mut watch = cacher.watch(options).unwrap();
            runtime().spawn(async move {
                for _ in 0..shape.deliveries_per_watcher() {
                    black_box(watch.next().await.unwrap().unwrap());
                }
            })
        })
        .collect();
    wait_registered(&cacher, shape.watchers());
    publish_and_join(&producer, pods(EVENTS, NODES), tasks)
}

fn tokio_broadcast(shape: Shape) -> Duration {
    let (sender, _) = tokio::sync::broadcast::channel::<Arc<Pod>>(CAPACITY);
    let pacer = Arc::new(Pacer::new(shape.watchers(), CAPACITY));
    let tasks = (0..shape.watchers())
        .map(|index| {
            let (mut receiver, filter, pacer) = (sender.subscribe(), shape.filter(index), pacer.clone());
            runtime().spawn(async move {
                for count in 1..=EVENTS {
                    let pod = receiver.recv().await.unwrap();
                    if filter.as_ref().is_none_or(|filter| *filter == pod.node) {
                        black_box(pod);
                    }
                    pacer.received(index, count);
                }
            })
        })
        .collect();
    let workload = pods(EVENTS, NODES);
    let start = Instant::now();
    for (_, pod) in workload {
        pacer.before_send();
        sender.send(Arc::new(pod)).unwrap();
    }
    join_all(tasks);
    start.elapsed()
}

fn shapes(c: &mut Criterion) {
    let peers = [
        Peer { name: "watchcache", elements: Shape::deliveries, run: watchcache },
        Peer { name: "tokio_broadcast", elements: Shape::deliveries, run: tokio_broadcast },
    ];
    let shapes = [1, 10, 100, 1_000].map(Shape::Unfiltered).into_iter().chain([Shape::Filtered]);
    bench_group(c, "shapes", shapes, &peers);
}

criterion_group!(benches, shapes);
criterion_main!(benches);
