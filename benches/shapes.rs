//! `shapes` and `shapes_threads`: the workloads the Kubernetes cacher is measured on
//! (PERF.md) — 1, 10, 100 and 1,000 unfiltered watchers, and 1,000 filtered watchers of
//! which 1% match each event (here trigger-indexed: 100 trigger values, 10 watchers
//! each). Consumers are tokio tasks in `shapes`, OS threads in `shapes_threads`. Peers:
//! tokio's broadcast channel and `async-broadcast` (filtering in the receiver for the
//! filtered shape). watchcache runs twice: consuming in batches, borrowing each event
//! (`visit_async` / `visit`), and one owned event at a time (the `Stream` / `recv`); in
//! `shapes`, both again in upstream mode (`watchcache_upstream_*`: the same events at
//! sparse upstream revisions). Throughput is deliveries per second.

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
    bench_group, indexed_cacher, node, pods, publish_and_join, wait_registered, Mode, Pacer, Peer, Pod,
    Tasks, Writer,
};
use watchcache::{Cacher, Watch, WatchOptions};

const EVENTS: u64 = 10_000;
const CAPACITY: usize = 1024;
/// Trigger values in the filtered shape: each event matches 1% of 1,000 watchers.
const NODES: usize = 100;
/// The most events a batch consumer takes per call.
const BATCH: usize = 256;

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
    const ALL: [Shape; 5] = [
        Shape::Unfiltered(1),
        Shape::Unfiltered(10),
        Shape::Unfiltered(100),
        Shape::Unfiltered(1_000),
        Shape::Filtered,
    ];

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

    /// A cacher in `mode`, its writer, and one watch per watcher of the shape.
    fn watches(self, mode: Mode) -> (Cacher<Pod>, Writer<Pod>, Vec<Watch<Pod>>) {
        let (cacher, writer) = Writer::build(indexed_cacher(), mode);
        let watches = (0..self.watchers())
            .map(|index| {
                let options = match self.filter(index) {
                    Some(value) => WatchOptions::new().trigger(value),
                    None => WatchOptions::new(),
                };
                cacher.watch(options).unwrap()
            })
            .collect();
        (cacher, writer, watches)
    }
}

/// Runs one task per watch; `consume` drains a watch of its `expected` deliveries.
fn watchcache_tasks<F>(mode: Mode, shape: Shape, consume: fn(Watch<Pod>, u64) -> F) -> Duration
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let (cacher, mut writer, watches) = shape.watches(mode);
    let tasks = Tasks::spawn(
        watches.into_iter().map(|watch| consume(watch, shape.deliveries_per_watcher())).collect(),
    );
    wait_registered(&cacher, shape.watchers());
    publish_and_join(&mut writer, pods(EVENTS, NODES), tasks)
}

fn watchcache_visit_tasks(mode: Mode, shape: Shape) -> Duration {
    watchcache_tasks(mode, shape, |mut watch, expected| async move {
        let mut seen = 0;
        while seen < expected {
            seen += watch.visit_async(BATCH, |event| _ = black_box(event)).await.unwrap() as u64;
        }
    })
}

fn watchcache_stream_tasks(mode: Mode, shape: Shape) -> Duration {
    watchcache_tasks(mode, shape, |mut watch, expected| async move {
        for _ in 0..expected {
            black_box(watch.next().await.unwrap().unwrap());
        }
    })
}

/// Runs one thread per watch; the clock runs from the first put until every thread is
/// done.
fn watchcache_threads(shape: Shape, consume: fn(Watch<Pod>, u64)) -> Duration {
    let (cacher, mut writer, watches) = shape.watches(Mode::Embedded);
    let expected = shape.deliveries_per_watcher();
    std::thread::scope(|scope| {
        for watch in watches {
            scope.spawn(move || consume(watch, expected));
        }
        wait_registered(&cacher, shape.watchers());
        let start = Instant::now();
        for (key, pod) in pods(EVENTS, NODES) {
            writer.put(key, pod);
        }
        start
    })
    .elapsed()
}

fn watchcache_visit_threads(shape: Shape) -> Duration {
    watchcache_threads(shape, |mut watch, expected| {
        let mut seen = 0;
        while seen < expected {
            seen += watch.visit(BATCH, |event| _ = black_box(event)).unwrap() as u64;
        }
    })
}

fn watchcache_recv_threads(shape: Shape) -> Duration {
    watchcache_threads(shape, |mut watch, expected| {
        for _ in 0..expected {
            black_box(watch.recv().unwrap());
        }
    })
}

/// tokio's broadcast drops for a lapped receiver; the sender is paced (`Pacer`).
fn tokio_broadcast(shape: Shape, threads: bool) -> Duration {
    let (sender, _) = tokio::sync::broadcast::channel::<Arc<Pod>>(CAPACITY);
    let pacer = Arc::new(Pacer::new(shape.watchers(), CAPACITY));
    let receivers: Vec<_> =
        (0..shape.watchers()).map(|index| (index, sender.subscribe(), shape.filter(index))).collect();
    let keep = |pod: Arc<Pod>, filter: &Option<String>| {
        if filter.as_ref().is_none_or(|filter| *filter == pod.node) {
            black_box(pod);
        }
    };
    let publish = |pacer: &Pacer| {
        let workload = pods(EVENTS, NODES);
        let start = Instant::now();
        for (_, pod) in workload {
            pacer.before_send();
            sender.send(Arc::new(pod)).unwrap();
        }
        start
    };
    if threads {
        return std::thread::scope(|scope| {
            for (index, mut receiver, filter) in receivers {
                let pacer = &*pacer;
                scope.spawn(move || {
                    for count in 1..=EVENTS {
                        keep(receiver.blocking_recv().unwrap(), &filter);
                        pacer.received(index, count);
                    }
                });
            }
            publish(&pacer)
        })
        .elapsed();
    }
    let tasks = Tasks::spawn(
        receivers
            .into_iter()
            .map(|(index, mut receiver, filter)| {
                let pacer = pacer.clone();
                async move {
                    for count in 1..=EVENTS {
                        keep(receiver.recv().await.unwrap(), &filter);
                        pacer.received(index, count);
                    }
                }
            })
            .collect(),
    );
    tasks.finish(publish(&pacer))
}

/// `async-broadcast` waits for room instead of dropping, so it needs no pacing.
fn async_broadcast(shape: Shape, threads: bool) -> Duration {
    let (sender, receiver) = async_broadcast::broadcast::<Arc<Pod>>(CAPACITY);
    let receivers: Vec<_> =
        (0..shape.watchers()).map(|index| (receiver.new_receiver(), shape.filter(index))).collect();
    drop(receiver);
    let keep = |pod: Arc<Pod>, filter: &Option<String>| {
        if filter.as_ref().is_none_or(|filter| *filter == pod.node) {
            black_box(pod);
        }
    };
    let publish = || {
        let workload = pods(EVENTS, NODES);
        let start = Instant::now();
        for (_, pod) in workload {
            assert!(sender.broadcast_blocking(Arc::new(pod)).unwrap().is_none());
        }
        start
    };
    if threads {
        return std::thread::scope(|scope| {
            for (mut receiver, filter) in receivers {
                scope.spawn(move || {
                    (0..EVENTS).for_each(|_| keep(receiver.recv_blocking().unwrap(), &filter))
                });
            }
            publish()
        })
        .elapsed();
    }
    let tasks = Tasks::spawn(
        receivers
            .into_iter()
            .map(|(mut receiver, filter)| async move {
                for _ in 0..EVENTS {
                    keep(receiver.recv().await.unwrap(), &filter);
                }
            })
            .collect(),
    );
    tasks.finish(publish())
}

fn shapes(c: &mut Criterion) {
    let peers = [
        Peer {
            name: "watchcache_visit",
            elements: Shape::deliveries,
            run: |shape| watchcache_visit_tasks(Mode::Embedded, shape),
        },
        Peer {
            name: "watchcache_stream",
            elements: Shape::deliveries,
            run: |shape| watchcache_stream_tasks(Mode::Embedded, shape),
        },
        Peer {
            name: "watchcache_upstream_visit",
            elements: Shape::deliveries,
            run: |shape| watchcache_visit_tasks(Mode::Upstream, shape),
        },
        Peer {
            name: "watchcache_upstream_stream",
            elements: Shape::deliveries,
            run: |shape| watchcache_stream_tasks(Mode::Upstream, shape),
        },
        Peer {
            name: "tokio_broadcast",
            elements: Shape::deliveries,
            run: |shape| tokio_broadcast(shape, false),
        },
        Peer {
            name: "async_broadcast",
            elements: Shape::deliveries,
            run: |shape| async_broadcast(shape, false),
        },
    ];
    bench_group(c, "shapes", Shape::ALL, &peers);
    let peers = [
        Peer { name: "watchcache_visit", elements: Shape::deliveries, run: watchcache_visit_threads },
        Peer { name: "watchcache_recv", elements: Shape::deliveries, run: watchcache_recv_threads },
        Peer {
            name: "tokio_broadcast",
            elements: Shape::deliveries,
            run: |shape| tokio_broadcast(shape, true),
        },
        Peer {
            name: "async_broadcast",
            elements: Shape::deliveries,
            run: |shape| async_broadcast(shape, true),
        },
    ];
    bench_group(c, "shapes_threads", Shape::ALL, &peers);
}

criterion_group!(benches, shapes);
criterion_main!(benches);
