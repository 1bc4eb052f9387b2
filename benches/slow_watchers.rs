//! `slow_watchers`: 1,000 watchers on 10 trigger values (100 per value, consumers as
//! tokio tasks), with none or 1% of them stalled (one per value, so every event meets a
//! stalled watcher). A stalled watcher is held open and never read. Every design gets
//! 1,024 events of buffer per watcher. Throughput is the
//! healthy watchers' deliveries per second; after the group, each configuration's forced
//! closes (and parks) of its last run are printed.
//!
//! watchcache runs under `Park` and `Terminate`; the peers are the two designs servers
//! write by hand: a loop over per-watcher channels that drops a watcher whose channel
//! stays full for 100 ms, and tokio's broadcast channel with the filter in each receiver (a
//! stalled receiver is lapped: it loses events without being told until it reads again).

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

mod support;

use criterion::{criterion_group, criterion_main, Criterion};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::fmt;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{
    bench_group, indexed_cacher, node, pods, publish_and_join, wait_registered, Mode, Pacer, Peer, Pod,
    Tasks, Writer,
};
use watchcache::{SlowWatcherPolicy, WatchOptions};

const WATCHERS: usize = 1_000;
const NODES: usize = 10;
const EVENTS: u64 = 20_000;
/// tokio's broadcast delivers every event to every receiver, 1,000 times the work.
const BROADCAST_EVENTS: u64 = 2_000;
const CAPACITY: usize = 1024;

#[derive(Clone, Copy)]
struct Shape {
    stalled: usize,
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%_stalled", self.stalled * 100 / WATCHERS)
    }
}

impl Shape {
    /// Watcher `index` follows node `index % NODES`; the first `stalled` are stalled.
    fn is_stalled(self, index: usize) -> bool {
        index < self.stalled
    }

    fn healthy_per_node(self) -> u64 {
        ((WATCHERS - self.stalled) / NODES) as u64
    }
}

fn watched_node(index: usize) -> String {
    node(index % NODES)
}

/// What each configuration's last run closed, printed after the group.
static CLOSES: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

fn record_closes(peer: &str, shape: Shape, closes: String) {
    CLOSES.lock().unwrap().insert(format!("{peer}/{shape}"), closes);
}

fn watchcache(shape: Shape, policy: SlowWatcherPolicy) -> Duration {
    let builder = indexed_cacher().slow_watcher_policy(policy).watcher_buffer(CAPACITY);
    let (cacher, mut writer) = Writer::build(builder, Mode::Embedded);
    let mut stalled = Vec::new();
    let mut tasks = Vec::new();
    for index in 0..WATCHERS {
        let mut watch = cacher.watch(WatchOptions::new().trigger(watched_node(index))).unwrap();
        if shape.is_stalled(index) {
            stalled.push(watch);
            continue;
        }
        tasks.push(async move {
            for _ in 0..EVENTS / NODES as u64 {
                black_box(watch.next().await.unwrap().unwrap());
            }
        });
    }
    wait_registered(&cacher, WATCHERS);
    let elapsed = publish_and_join(&mut writer, pods(EVENTS, NODES), Tasks::spawn(tasks));
    let stats = cacher.stats();
    let name = format!("watchcache_{policy:?}").to_lowercase();
    record_closes(&name, shape, format!("{} terminated, {} parked", stats.terminations, stats.parks));
    elapsed
}

fn watchcache_park(shape: Shape) -> Duration {
    watchcache(shape, SlowWatcherPolicy::Park)
}

fn watchcache_terminate(shape: Shape) -> Duration {
    watchcache(shape, SlowWatcherPolicy::Terminate)
}

/// The hand-rolled loop: one bounded channel per watcher, the filter in the loop, and a
/// watcher whose channel stays full for `GRACE` dropped (the bound Kubernetes puts on
/// waiting for one watcher).
fn channel_loop_drop_full(shape: Shape) -> Duration {
    const GRACE: Duration = Duration::from_millis(100);
    let mut stalled = Vec::new();
    let mut tasks = Vec::new();
    let mut senders = Vec::new();
    for index in 0..WATCHERS {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Arc<Pod>>(CAPACITY);
        senders.push(Some((watched_node(index), sender)));
        if shape.is_stalled(index) {
            stalled.push(receiver);
            continue;
        }
        tasks.push(async move {
            for _ in 0..EVENTS / NODES as u64 {
                black_box(receiver.recv().await.unwrap());
            }
        });
    }
    let tasks = Tasks::spawn(tasks);
    let workload = pods(EVENTS, NODES);
    let mut dropped = 0;
    let start = Instant::now();
    for (_, pod) in workload {
        let pod = Arc::new(pod);
        for slot in &mut senders {
            let Some((filter, sender)) = slot else { continue };
            if *filter != pod.node {
                continue;
            }
            let deadline = Instant::now() + GRACE;
            let mut pod = pod.clone();
            while let Err(error) = sender.try_send(pod) {
                match error {
                    tokio::sync::mpsc::error::TrySendError::Full(_) if Instant::now() >= deadline => {
                        *slot = None;
                        dropped += 1;
                        break;
                    }
                    tokio::sync::mpsc::error::TrySendError::Full(rejected) => pod = rejected,
                    tokio::sync::mpsc::error::TrySendError::Closed(_) => panic!("a consumer ended early"),
                }
                std::thread::yield_now();
            }
        }
    }
    let elapsed = tasks.finish(start);
    record_closes("channel_loop_drop_full", shape, format!("{dropped} dropped"));
    elapsed
}

fn tokio_broadcast_filter(shape: Shape) -> Duration {
    let (sender, _) = tokio::sync::broadcast::channel::<Arc<Pod>>(CAPACITY);
    let pacer = Arc::new(Pacer::new(WATCHERS - shape.stalled, CAPACITY));
    let mut stalled = Vec::new();
    let mut tasks = Vec::new();
    for index in 0..WATCHERS {
        let (mut receiver, filter) = (sender.subscribe(), watched_node(index));
        if shape.is_stalled(index) {
            stalled.push(receiver);
            continue;
        }
        let (pacer, healthy) = (pacer.clone(), tasks.len());
        tasks.push(async move {
            for count in 1..=BROADCAST_EVENTS {
                let pod = receiver.recv().await.unwrap();
                if pod.node == filter {
                    black_box(pod);
                }
                pacer.received(healthy, count);
            }
        });
    }
    let tasks = Tasks::spawn(tasks);
    let workload = pods(BROADCAST_EVENTS, NODES);
    let start = Instant::now();
    for (_, pod) in workload {
        pacer.before_send();
        sender.send(Arc::new(pod)).unwrap();
    }
    let elapsed = tasks.finish(start);
    let lapped = stalled
        .iter_mut()
        .map(|receiver| receiver.try_recv())
        .filter(|received| matches!(received, Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_))))
        .count();
    record_closes("tokio_broadcast_filter", shape, format!("0 closed, {lapped} lapped"));
    elapsed
}

fn slow_watchers(c: &mut Criterion) {
    let healthy = |shape: Shape| EVENTS * shape.healthy_per_node();
    let peers = [
        Peer { name: "watchcache_park", elements: healthy, run: watchcache_park },
        Peer { name: "watchcache_terminate", elements: healthy, run: watchcache_terminate },
        Peer { name: "channel_loop_drop_full", elements: healthy, run: channel_loop_drop_full },
        Peer {
            name: "tokio_broadcast_filter",
            elements: |shape| BROADCAST_EVENTS * shape.healthy_per_node(),
            run: tokio_broadcast_filter,
        },
    ];
    bench_group(c, "slow_watchers", [0, WATCHERS / 100].map(|stalled| Shape { stalled }), &peers);
    for (run, closes) in CLOSES.lock().unwrap().iter() {
        eprintln!("slow_watchers/{run}: {closes}");
    }
}

criterion_group!(benches, slow_watchers);
criterion_main!(benches);
