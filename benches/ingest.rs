//! `ingest`: one producer thread → one consumer thread, N events; watchcache (through
//! the dispatcher to one unfiltered watch) against the bare hand-offs it is built from.
//! Throughput is events per second delivered to the consumer.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam_utils::Backoff;
use std::time::{Duration, Instant};
use watchcache::{Cacher, WatchOptions};

const BATCH: u64 = 100_000;

/// Producer/consumer pair timing: `consume` runs on its own thread and returns when it
/// has seen `events`; the clock runs from before the first send to the last receipt.
/// One timed run of a peer.
type Run = fn(u64) -> Duration;

fn timed(events: u64, produce: impl FnOnce(u64) + Send, consume: impl FnOnce(u64) + Send) -> Duration {
    std::thread::scope(|scope| {
        let consumer = scope.spawn(move || consume(events));
        let start = Instant::now();
        produce(events);
        consumer.join().unwrap();
        start.elapsed()
    })
}

fn watchcache_one_watch(events: u64) -> Duration {
    let cacher: Cacher<u64> = Cacher::builder().build();
    let producer = cacher.producer();
    let mut watch = cacher.watch(WatchOptions::new()).unwrap();
    timed(
        events,
        |events| (0..events).for_each(|value| producer.put("key", value).unwrap()),
        move |events| {
            for _ in 0..events {
                watch.next_timeout(Duration::from_secs(60)).unwrap().unwrap();
            }
        },
    )
}

fn array_queue(events: u64) -> Duration {
    let queue = crossbeam_queue::ArrayQueue::new(1024);
    let queue = &queue;
    timed(
        events,
        |events| {
            for value in 0..events {
                let backoff = Backoff::new();
                let mut value = value;
                while let Err(rejected) = queue.push(value) {
                    value = rejected;
                    backoff.snooze();
                }
            }
        },
        |events| {
            for _ in 0..events {
                let backoff = Backoff::new();
                while queue.pop().is_none() {
                    backoff.snooze();
                }
            }
        },
    )
}

fn crossbeam_channel(events: u64) -> Duration {
    let (sender, receiver) = crossbeam_channel::bounded(1024);
    timed(
        events,
        |events| (0..events).for_each(|value| sender.send(value).unwrap()),
        move |events| {
            for _ in 0..events {
                receiver.recv().unwrap();
            }
        },
    )
}

fn tokio_broadcast(events: u64) -> Duration {
    let (sender, mut receiver) = tokio::sync::broadcast::channel(1024);
    // broadcast never blocks its sender: pace it so that it never laps the receiver,
    // which would turn the run into a measurement of `Lagged` errors.
    let received = std::sync::atomic::AtomicU64::new(0);
    let received = &received;
    timed(
        events,
        |events| {
            for value in 0..events {
                while value - received.load(std::sync::atomic::Ordering::Relaxed) >= 1000 {
                    std::thread::yield_now();
                }
                sender.send(value).unwrap();
            }
        },
        move |events| {
            for count in 1..=events {
                receiver.blocking_recv().unwrap();
                received.store(count, std::sync::atomic::Ordering::Relaxed);
            }
        },
    )
}

fn ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(BATCH)).sample_size(10).measurement_time(Duration::from_secs(4));
    let peers: [(&str, Run); 4] = [
        ("watchcache", watchcache_one_watch),
        ("crossbeam_array_queue", array_queue),
        ("crossbeam_channel", crossbeam_channel),
        ("tokio_broadcast", tokio_broadcast),
    ];
    for (name, run) in peers {
        group.bench_function(BenchmarkId::new(name, "1p1c"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run(BATCH)).sum())
        });
    }
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
