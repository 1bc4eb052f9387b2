//! `indexed`: N trigger-indexed watchers, each event matching exactly one of them;
//! watchcache's trigger index against the hand-rolled loop that tests every watcher's
//! filter per event. Consumers are tokio tasks (N up to 10,000). Throughput is
//! deliveries per second (here equal to events per second).

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::StreamExt;
use std::time::{Duration, Instant};
use watchcache::{Cacher, WatchOptions};

const EVENTS: u64 = 20_000;

/// One timed run of a peer.
type Run = fn(&tokio::runtime::Runtime, usize) -> Duration;

#[derive(Debug)]
struct Pod {
    node: String,
}

fn node(event: u64, watchers: usize) -> String {
    format!("node-{}", event % watchers as u64)
}

fn watchcache_index(runtime: &tokio::runtime::Runtime, watchers: usize) -> Duration {
    let cacher: Cacher<Pod> = Cacher::builder().trigger(|pod: &Pod| Some(pod.node.as_str())).build();
    let producer = cacher.producer();
    let tasks: Vec<_> = (0..watchers)
        .map(|index| {
            let expected = (0..EVENTS).filter(|event| *event as usize % watchers == index).count();
            let mut watch = cacher.watch(WatchOptions::new().trigger(format!("node-{index}"))).unwrap();
            runtime.spawn(async move {
                for _ in 0..expected {
                    watch.next().await.unwrap().unwrap();
                }
            })
        })
        .collect();
    // Start the clock once every watch is in live dispatch (not replaying the window).
    while cacher.stats().watchers_indexed < watchers {
        std::thread::yield_now();
    }
    let start = Instant::now();
    for event in 0..EVENTS {
        // Distinct keys: every event is an Added on one node only.
        producer.put(&format!("pod-{event}"), Pod { node: node(event, watchers) }).unwrap();
    }
    runtime.block_on(async {
        for task in tasks {
            task.await.unwrap();
        }
    });
    start.elapsed()
}

fn filter_loop(runtime: &tokio::runtime::Runtime, watchers: usize) -> Duration {
    let (senders, tasks): (Vec<_>, Vec<_>) = (0..watchers)
        .map(|index| {
            let (sender, mut receiver) = tokio::sync::mpsc::channel::<std::sync::Arc<Pod>>(1024);
            let filter = format!("node-{index}");
            let expected = (0..EVENTS).filter(|event| *event as usize % watchers == index).count();
            let task = runtime.spawn(async move {
                for _ in 0..expected {
                    receiver.recv().await.unwrap();
                }
            });
            ((filter, sender), task)
        })
        .unzip();
    let start = Instant::now();
    for event in 0..EVENTS {
        let pod = std::sync::Arc::new(Pod { node: node(event, watchers) });
        for (filter, sender) in &senders {
            if *filter == pod.node {
                sender.blocking_send(pod.clone()).unwrap();
            }
        }
    }
    runtime.block_on(async {
        for task in tasks {
            task.await.unwrap();
        }
    });
    start.elapsed()
}

fn indexed(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let mut group = c.benchmark_group("indexed");
    group.sample_size(10).measurement_time(Duration::from_secs(4)).throughput(Throughput::Elements(EVENTS));
    let peers: [(&str, Run); 2] = [("watchcache", watchcache_index), ("filter_loop", filter_loop)];
    for watchers in [100usize, 10_000] {
        for (name, run) in peers {
            group.bench_function(BenchmarkId::new(name, watchers), |b| {
                b.iter_custom(|iters| (0..iters).map(|_| run(&runtime, watchers)).sum())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, indexed);
criterion_main!(benches);
