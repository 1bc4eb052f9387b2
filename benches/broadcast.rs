//! `broadcast`: one producer, W unfiltered watchers each drained by its own thread;
//! watchcache against tokio's broadcast channel and the hand-rolled `Vec` of
//! crossbeam-channel senders. Throughput is deliveries (events × watchers) per second.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::{Duration, Instant};
use watchcache::{Cacher, WatchOptions};

const EVENTS: u64 = 20_000;

/// One timed run of a peer.
type Run = fn(usize) -> Duration;

fn watchcache_fan_out(watchers: usize) -> Duration {
    let cacher: Cacher<u64> = Cacher::builder().build();
    let producer = cacher.producer();
    let watches: Vec<_> = (0..watchers).map(|_| cacher.watch(WatchOptions::new()).unwrap()).collect();
    std::thread::scope(|scope| {
        for mut watch in watches {
            scope.spawn(move || {
                for _ in 0..EVENTS {
                    watch.next_timeout(Duration::from_secs(60)).unwrap().unwrap();
                }
            });
        }
        let start = Instant::now();
        (0..EVENTS).for_each(|value| producer.put("key", value).unwrap());
        start
    })
    .elapsed()
}

fn crossbeam_senders(watchers: usize) -> Duration {
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..watchers).map(|_| crossbeam_channel::bounded(1024)).unzip();
    std::thread::scope(|scope| {
        for receiver in receivers {
            scope.spawn(move || {
                for _ in 0..EVENTS {
                    receiver.recv().unwrap();
                }
            });
        }
        let start = Instant::now();
        for value in 0..EVENTS {
            for sender in &senders {
                sender.send(value).unwrap();
            }
        }
        start
    })
    .elapsed()
}

fn tokio_broadcast(watchers: usize) -> Duration {
    let (sender, _) = tokio::sync::broadcast::channel(1024);
    let receivers: Vec<_> = (0..watchers).map(|_| sender.subscribe()).collect();
    let slowest = std::sync::atomic::AtomicU64::new(0);
    let progress: Vec<_> = (0..watchers).map(|_| std::sync::atomic::AtomicU64::new(0)).collect();
    let (slowest, progress) = (&slowest, &progress);
    std::thread::scope(|scope| {
        for (index, mut receiver) in receivers.into_iter().enumerate() {
            scope.spawn(move || {
                for count in 1..=EVENTS {
                    receiver.blocking_recv().unwrap();
                    progress[index].store(count, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
        let start = Instant::now();
        for value in 0..EVENTS {
            // Pace the sender so no receiver is lapped (broadcast would drop for it).
            while value - slowest.load(std::sync::atomic::Ordering::Relaxed) >= 1000 {
                let min = progress.iter().map(|done| done.load(std::sync::atomic::Ordering::Relaxed)).min();
                slowest.store(min.unwrap_or(value), std::sync::atomic::Ordering::Relaxed);
                std::thread::yield_now();
            }
            sender.send(value).unwrap();
        }
        start
    })
    .elapsed()
}

fn broadcast(c: &mut Criterion) {
    let mut group = c.benchmark_group("broadcast");
    group.sample_size(10).measurement_time(Duration::from_secs(4));
    let peers: [(&str, Run); 3] = [
        ("watchcache", watchcache_fan_out),
        ("tokio_broadcast", tokio_broadcast),
        ("crossbeam_channel_vec", crossbeam_senders),
    ];
    for watchers in [1usize, 16, 64] {
        group.throughput(Throughput::Elements(EVENTS * watchers as u64));
        for (name, run) in peers {
            group.bench_function(BenchmarkId::new(name, watchers), |b| {
                b.iter_custom(|iters| (0..iters).map(|_| run(watchers)).sum())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, broadcast);
criterion_main!(benches);
