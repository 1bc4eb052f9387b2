//! `ingest`: P producer threads → one consumer thread, `EVENTS` events in all; watchcache
//! (through the dispatcher to one unfiltered watch) against the bare hand-offs it is
//! built from. `watchcache_upstream_*` is the same with one upstream writer (P = 1 only:
//! an upstream has one) applying each event at a sparse upstream revision. Throughput is
//! events per second delivered to the consumer.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

mod support;

use criterion::{criterion_group, criterion_main, Criterion};
use crossbeam_utils::Backoff;
use disruptor::{BusySpinWithSpinLoopHint, Producer as _};
use std::hint::black_box;
use std::time::{Duration, Instant};
use support::{bench_group, timed, Mode, Pacer, Peer, Writer};
use watchcache::{Cacher, WatchOptions};

const EVENTS: u64 = 100_000;
const CAPACITY: usize = 1024;

fn per_producer(producers: usize) -> u64 {
    EVENTS / producers as u64
}

/// The producers' keys. Each put makes its own `Arc<str>` of one, as a producer with a
/// new key string per change does (sharing one `Arc` across puts would make its
/// reference count the hottest line of the run, which no real producer has).
fn keys(producers: usize) -> Vec<String> {
    (0..producers).map(|index| format!("producer-{index}")).collect()
}

/// One owned event per call (`recv`).
fn recv(watch: &mut watchcache::Watch<u64>) -> u64 {
    black_box(watch.recv_timeout(Duration::from_secs(60)).unwrap());
    1
}

/// Every ready event per call, borrowed (`visit`).
fn visit(watch: &mut watchcache::Watch<u64>) -> u64 {
    watch.visit(1024, |event| _ = black_box(event)).unwrap() as u64
}

/// The upstream mode's one writer: the one producer thread takes it for the whole run.
fn watchcache_upstream(receive: fn(&mut watchcache::Watch<u64>) -> u64) -> Duration {
    let (cacher, writer) = Writer::build(Cacher::builder().incoming_capacity(CAPACITY), Mode::Upstream);
    let writer = std::sync::Mutex::new(Some(writer));
    let key = keys(1).remove(0);
    let mut watch = cacher.watch(WatchOptions::new()).unwrap();
    timed(
        1,
        |_| {
            let mut writer = writer.lock().unwrap().take().expect("one writer thread");
            (0..EVENTS).for_each(|value| writer.put(key.as_str(), value));
        },
        move || {
            let mut received = 0;
            while received < EVENTS {
                received += receive(&mut watch);
            }
        },
    )
}

fn watchcache_one_watch(producers: usize, receive: fn(&mut watchcache::Watch<u64>) -> u64) -> Duration {
    let cacher: Cacher<u64> = Cacher::builder().incoming_capacity(CAPACITY).build();
    let producer = cacher.producer();
    let keys = keys(producers);
    let mut watch = cacher.watch(WatchOptions::new()).unwrap();
    timed(
        producers,
        |index| {
            (0..per_producer(producers)).for_each(|value| producer.put(keys[index].as_str(), value).unwrap())
        },
        move || {
            let mut received = 0;
            while received < EVENTS {
                received += receive(&mut watch);
            }
        },
    )
}

fn array_queue(producers: usize) -> Duration {
    let queue = crossbeam_queue::ArrayQueue::new(CAPACITY);
    timed(
        producers,
        |_| {
            for value in 0..per_producer(producers) {
                let backoff = Backoff::new();
                let mut value = value;
                while let Err(rejected) = queue.push(value) {
                    value = rejected;
                    backoff.snooze();
                }
            }
        },
        || {
            for _ in 0..EVENTS {
                let backoff = Backoff::new();
                loop {
                    if let Some(value) = queue.pop() {
                        black_box(value);
                        break;
                    }
                    backoff.snooze();
                }
            }
        },
    )
}

fn crossbeam_channel(producers: usize) -> Duration {
    let (sender, receiver) = crossbeam_channel::bounded(CAPACITY);
    timed(
        producers,
        |_| (0..per_producer(producers)).for_each(|value| sender.send(value).unwrap()),
        move || {
            for _ in 0..EVENTS {
                black_box(receiver.recv().unwrap());
            }
        },
    )
}

/// The disruptor runs its own consumer thread; dropping the last producer returns once
/// that thread has handled every published event, which is where the clock stops.
fn disruptor(producers: usize) -> Duration {
    let handler = |value: &u64, _sequence, _end_of_batch| {
        black_box(*value);
    };
    if producers == 1 {
        let mut producer = disruptor::build_single_producer(CAPACITY, || 0u64, BusySpinWithSpinLoopHint)
            .handle_events_with(handler)
            .build();
        let start = Instant::now();
        (0..EVENTS).for_each(|value| producer.publish(|slot| *slot = value));
        drop(producer);
        return start.elapsed();
    }
    let producer = disruptor::build_multi_producer(CAPACITY, || 0u64, BusySpinWithSpinLoopHint)
        .handle_events_with(handler)
        .build();
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..producers {
            let mut producer = producer.clone();
            scope.spawn(move || {
                (0..per_producer(producers)).for_each(|value| producer.publish(|slot| *slot = value))
            });
        }
    });
    drop(producer);
    start.elapsed()
}

fn tokio_broadcast(producers: usize) -> Duration {
    let (sender, mut receiver) = tokio::sync::broadcast::channel(CAPACITY);
    let pacer = Pacer::new(1, CAPACITY);
    timed(
        producers,
        |_| {
            for value in 0..per_producer(producers) {
                pacer.before_send();
                sender.send(value).unwrap();
            }
        },
        || {
            for count in 1..=EVENTS {
                black_box(receiver.blocking_recv().unwrap());
                pacer.received(0, count);
            }
        },
    )
}

/// The harness alone: the same threads and loops with nothing sent.
fn harness(producers: usize) -> Duration {
    timed(
        producers,
        |_| {
            (0..per_producer(producers)).for_each(|value| {
                black_box(value);
            })
        },
        || {
            (0..EVENTS).for_each(|value| {
                black_box(value);
            })
        },
    )
}

fn ingest(c: &mut Criterion) {
    let events = |_| EVENTS;
    let peers = [
        Peer {
            name: "watchcache_visit",
            elements: events,
            run: |producers| watchcache_one_watch(producers, visit),
        },
        Peer {
            name: "watchcache_recv",
            elements: events,
            run: |producers| watchcache_one_watch(producers, recv),
        },
        Peer { name: "crossbeam_array_queue", elements: events, run: array_queue },
        Peer { name: "crossbeam_channel", elements: events, run: crossbeam_channel },
        Peer { name: "disruptor", elements: events, run: disruptor },
        Peer { name: "tokio_broadcast", elements: events, run: tokio_broadcast },
        Peer { name: "harness", elements: events, run: harness },
    ];
    bench_group(c, "ingest", [1usize, 2], &peers);
    let upstream = [
        Peer { name: "watchcache_upstream_visit", elements: events, run: |_| watchcache_upstream(visit) },
        Peer { name: "watchcache_upstream_recv", elements: events, run: |_| watchcache_upstream(recv) },
    ];
    bench_group(c, "ingest", [1usize], &upstream);
}

criterion_group!(benches, ingest);
criterion_main!(benches);
