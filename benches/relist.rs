//! `relist`: an upstream's watch breaks and it relists 10,000 objects, every one of them
//! changed, while 1,000 watches are open (half of them indexed by node, half unindexed;
//! tokio tasks). Two ways to get every watch to the new state:
//!
//! - `difference` (watchcache): `Upstream::relist` delivers the difference to the open
//!   watches; none is closed. The clock runs from the relist until every watch has seen
//!   every change it is owed.
//! - `close_and_relist` (what the Kubernetes Cacher makes its clients do:
//!   `terminateAllWatchers` before each relist): every watch is closed, and each client
//!   lists the new state (what it is owed, from the cacher) and watches again. The clock
//!   runs from the relist until every client holds its new list and a new watch.
//!
//! Throughput is the changes the watches are owed, per second (the same count for both);
//! each run also checks how many watches ended, and panics on any for `difference`.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

mod support;

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{node, Peer, Tasks};
use watchcache::{At, Cacher, ListOptions, Start, Upstream, Watch, WatchOptions};

const OBJECTS: u64 = 10_000;
const WATCHES: usize = 1_000;
const NODES: usize = 100;
/// The relist's revision; the state before it is at revision 1.
const RELIST_AT: u64 = 50;

/// A pod on a node, at a version of its spec.
#[derive(Debug, PartialEq)]
struct Pod {
    node: String,
    version: u32,
}

/// The state at `version`: object `n` on node `n % NODES`, every one changed between
/// versions.
fn state(version: u32) -> Vec<(String, Pod)> {
    (0..OBJECTS).map(|n| (format!("pods/{n:05}"), Pod { node: node(n as usize % NODES), version })).collect()
}

/// What watch `index` filters on: a node for the even half, nothing for the odd half.
fn filter(index: usize) -> Option<String> {
    (index % 2 == 0).then(|| node(index / 2 % NODES))
}

/// The changes watch `index` is owed by the relist: its node's objects, or every one.
fn owed(index: usize) -> u64 {
    match filter(index) {
        Some(_) => OBJECTS / NODES as u64,
        None => OBJECTS,
    }
}

/// A loaded upstream cacher, indexed by node, and its watches, all from the loaded state.
fn loaded() -> (Cacher<Pod>, Upstream<Pod>, Vec<Watch<Pod>>) {
    let builder = Cacher::builder().trigger(|pod: &Pod| Some(pod.node.as_str()));
    let (cacher, mut upstream) = builder.upstream();
    upstream.relist(1, state(1)).unwrap();
    cacher.list(ListOptions::new().at(At::AtLeast(1))).unwrap();
    let watches = (0..WATCHES)
        .map(|index| {
            let mut options = WatchOptions::new().start(Start::Revision(1));
            if let Some(node) = filter(index) {
                options = options.trigger(node);
            }
            cacher.watch(options).unwrap()
        })
        .collect();
    (cacher, upstream, watches)
}

fn difference(_: usize) -> Duration {
    let (cacher, mut upstream, watches) = loaded();
    let work = watches
        .into_iter()
        .enumerate()
        .map(|(index, mut watch)| {
            let expected = owed(index);
            async move {
                let mut seen = 0;
                while seen < expected {
                    seen += watch.visit_async(256, |event| _ = black_box(event)).await.expect("no watch ends")
                        as u64;
                }
            }
        })
        .collect();
    let tasks = Tasks::spawn(work);
    let next = state(2);
    let start = Instant::now();
    upstream.relist(RELIST_AT, next).unwrap();
    let elapsed = tasks.finish(start);
    assert_eq!(cacher.stats().terminations, 0);
    elapsed
}

fn close_and_relist(_: usize) -> Duration {
    let (cacher, mut upstream, watches) = loaded();
    let cacher = Arc::new(cacher);
    // Each client: its watch ends, it lists what it filters on at the relist's revision
    // and watches again from there.
    let work = watches
        .into_iter()
        .enumerate()
        .map(|(index, watch)| {
            let cacher = cacher.clone();
            async move {
                drop(watch);
                let mut options = ListOptions::new().at(At::AtLeast(RELIST_AT));
                let mut watch_options = WatchOptions::new().start(Start::Revision(RELIST_AT));
                if let Some(node) = filter(index) {
                    options = options.trigger(node.clone());
                    watch_options = watch_options.trigger(node);
                }
                let list = cacher.list_async(options).await.unwrap();
                black_box(list.items.len());
                black_box(cacher.watch(watch_options).unwrap());
            }
        })
        .collect();
    let next = state(2);
    let start = Instant::now();
    upstream.relist(RELIST_AT, next).unwrap();
    Tasks::spawn(work).finish(start)
}

fn relist(c: &mut Criterion) {
    let owed_in_all = |_| (0..WATCHES).map(owed).sum::<u64>();
    let peers = [
        Peer { name: "difference", elements: owed_in_all, run: difference },
        Peer { name: "close_and_relist", elements: owed_in_all, run: close_and_relist },
    ];
    support::bench_group(c, "relist", [OBJECTS as usize], &peers);
}

criterion_group!(benches, relist);
criterion_main!(benches);
