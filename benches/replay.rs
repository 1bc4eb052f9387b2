//! `replay`: what a reader that is not live costs.
//! - `catch_up`: a new watch replaying 100,000 events from the window (set up before the
//!   clock); peers: a tokio broadcast receiver reading the same number of buffered
//!   messages, and cloning the events out of a `Vec` (the floor: what any replay does).
//! - `list_during_ingest`: listing 10,000 objects while a producer thread keeps
//!   updating them; peer: the hand-rolled `RwLock<BTreeMap>` that the writer locks per
//!   update and the reader locks for the whole copy.
//!
//! Throughput is events (or listed objects) per second.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

mod support;

use criterion::{criterion_group, criterion_main, Criterion};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use support::{bench_group, Peer};
use watchcache::{Cacher, ListOptions, Start, Watch, WatchOptions};

const KEYS: u64 = 10_000;
/// Lists per timed run, so that one run outlasts the writer's start-up.
const LISTS: u64 = 20;

fn key(index: u64) -> String {
    format!("pod-{:05}", index % KEYS)
}

/// A new watch replays `events` from the window; `consume` takes them all.
fn watchcache_catch_up(events: u64, consume: fn(&mut Watch<u64>, u64)) -> Duration {
    let cacher: Cacher<u64> = Cacher::builder().window_capacity(events as usize).build();
    let producer = cacher.producer();
    (0..events).for_each(|event| producer.put(key(event), event).unwrap());
    while cacher.stats().revision < events {
        std::thread::yield_now();
    }
    let start = Instant::now();
    let mut watch = cacher.watch(WatchOptions::new().start(Start::Revision(0))).unwrap();
    consume(&mut watch, events);
    start.elapsed()
}

/// One owned event per call (`recv`).
fn watchcache_catch_up_recv(events: u64) -> Duration {
    watchcache_catch_up(events, |watch, events| {
        for _ in 0..events {
            black_box(watch.recv_timeout(Duration::from_secs(60)).unwrap());
        }
    })
}

/// Every ready event per call, borrowed (`visit`).
fn watchcache_catch_up_visit(events: u64) -> Duration {
    watchcache_catch_up(events, |watch, events| {
        let mut seen = 0;
        while seen < events {
            seen += watch.visit(1024, |event| _ = black_box(event)).unwrap() as u64;
        }
    })
}

fn tokio_broadcast_buffered(events: u64) -> Duration {
    let (sender, mut receiver) = tokio::sync::broadcast::channel(events as usize);
    (0..events).for_each(|event| _ = sender.send((Arc::<str>::from(key(event)), Arc::new(event))).unwrap());
    let start = Instant::now();
    for _ in 0..events {
        black_box(receiver.try_recv().unwrap());
    }
    start.elapsed()
}

fn vec_clone(events: u64) -> Duration {
    let log: Vec<_> = (0..events).map(|event| (Arc::<str>::from(key(event)), Arc::new(event))).collect();
    let start = Instant::now();
    for entry in &log {
        black_box(entry.clone());
    }
    start.elapsed()
}

/// Times `LISTS` calls of `list` while `write` runs in a loop on another thread.
fn while_writing(write: impl Fn(u64) + Sync, mut list: impl FnMut()) -> Duration {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut update = 0;
            while !stop.load(Ordering::Relaxed) {
                write(update);
                update += 1;
            }
        });
        let start = Instant::now();
        (0..LISTS).for_each(|_| list());
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        elapsed
    })
}

fn watchcache_list(objects: u64) -> Duration {
    let cacher: Cacher<u64> = Cacher::builder().build();
    let producer = cacher.producer();
    (0..objects).for_each(|index| producer.put(key(index), index).unwrap());
    while cacher.stats().objects < objects as usize {
        std::thread::yield_now();
    }
    while_writing(
        |update| producer.put(key(update), update).unwrap(),
        || {
            let listed = cacher.list(ListOptions::new()).unwrap().items;
            assert_eq!(listed.len() as u64, objects);
            black_box(listed);
        },
    )
}

fn rwlock_btree_map(objects: u64) -> Duration {
    let map: RwLock<BTreeMap<Arc<str>, Arc<u64>>> =
        RwLock::new((0..objects).map(|index| (Arc::from(key(index)), Arc::new(index))).collect());
    while_writing(
        |update| _ = map.write().unwrap().insert(Arc::from(key(update)), Arc::new(update)),
        || {
            let listed: Vec<_> =
                map.read().unwrap().iter().map(|(key, object)| (key.clone(), object.clone())).collect();
            assert_eq!(listed.len() as u64, objects);
            black_box(listed);
        },
    )
}

fn replay(c: &mut Criterion) {
    let events = |events| events;
    let peers = [
        Peer { name: "watchcache_visit", elements: events, run: watchcache_catch_up_visit },
        Peer { name: "watchcache_recv", elements: events, run: watchcache_catch_up_recv },
        Peer { name: "tokio_broadcast_buffered", elements: events, run: tokio_broadcast_buffered },
        Peer { name: "vec_clone", elements: events, run: vec_clone },
    ];
    bench_group(c, "replay_catch_up", [100_000], &peers);

    let listed = |objects| objects * LISTS;
    let peers = [
        Peer { name: "watchcache", elements: listed, run: watchcache_list },
        Peer { name: "rwlock_btree_map", elements: listed, run: rwlock_btree_map },
    ];
    bench_group(c, "replay_list_during_ingest", [KEYS], &peers);
}

criterion_group!(benches, replay);
criterion_main!(benches);
