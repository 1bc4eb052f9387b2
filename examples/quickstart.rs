//! A tour of watchcache on the embedded default: producers publish pods, an indexed
//! watcher per node and one unindexed watcher follow them, a stalled watcher is parked
//! and catches up, and the cacher's counters are printed at the end.
//!
//! `cargo run --release --example quickstart`

use std::time::{Duration, Instant};
use watchcache::{Cacher, Event, List, ListOptions, Start, WatchOptions};

#[derive(Debug, Clone)]
struct Pod {
    node: String,
    generation: u64,
}

const NODES: usize = 8;
const PODS: usize = 200;
const CHANGES_PER_PRODUCER: u64 = 50_000;
const PRODUCERS: u64 = 2;

fn main() {
    let cacher: Cacher<Pod> = Cacher::builder().trigger(|pod: &Pod| Some(pod.node.as_str())).build();
    let total = CHANGES_PER_PRODUCER * PRODUCERS;
    let wait = Duration::from_secs(60);

    // One watcher per node (indexed), one for everything (unindexed), and one that stalls.
    let per_node: Vec<_> = (0..NODES)
        .map(|node| {
            let options = WatchOptions::new().trigger(format!("node-{node}")).start(Start::Revision(0));
            let mut watch = cacher.watch(options).expect("watch");
            // Reads until shutdown ends the watch.
            std::thread::spawn(move || {
                let mut events = 0u64;
                while watch.recv_timeout(wait).is_ok() {
                    events += 1;
                }
                events
            })
        })
        .collect();
    let mut everything = cacher.watch(WatchOptions::new().start(Start::Revision(0))).expect("watch");
    let mut stalled = cacher.watch(WatchOptions::new().trigger("node-0").buffer(4)).expect("watch");

    let started = Instant::now();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|id| {
            let producer = cacher.producer();
            std::thread::spawn(move || {
                for generation in 0..CHANGES_PER_PRODUCER {
                    let pod = (generation as usize * 7 + id as usize) % PODS;
                    // Pods move to another node every 1000 generations.
                    let node = format!("node-{}", (pod + generation as usize / 1000) % NODES);
                    producer.put(format!("pods/default/pod-{pod}"), Pod { node, generation }).expect("put");
                }
            })
        })
        .collect();
    let mut seen = 0u64;
    while let Ok(event) = everything.recv_timeout(wait) {
        seen += 1;
        if event.revision() == total {
            break;
        }
    }
    let elapsed = started.elapsed();
    producers.into_iter().for_each(|producer| producer.join().expect("producer"));

    // The stalled watcher was parked long ago; now it drains, catches up from the window
    // and rejoins, without a gap.
    let mut caught_up = 0u64;
    let mut last = 0;
    let mut last_generation = 0;
    while let Ok(event) = stalled.try_recv() {
        assert!(event.revision() > last, "in order");
        last = event.revision();
        last_generation = event.object().map_or(last_generation, |pod| pod.generation);
        caught_up += 1;
    }

    let List { items: pods, revision, .. } = cacher.list(ListOptions::new().prefix("pods/")).expect("list");
    let last_change = cacher
        .watch(WatchOptions::new().start(Start::Revision(revision - 1)))
        .ok()
        .and_then(|mut watch| watch.recv_timeout(wait).ok());
    let stats = cacher.stats();
    cacher.shutdown();
    let indexed: u64 = per_node.into_iter().map(|watcher| watcher.join().expect("watcher")).sum();
    println!("watchcache quickstart");
    println!(
        "  changes applied        {total} in {elapsed:.2?} ({:.0} changes/s)",
        total as f64 / elapsed.as_secs_f64()
    );
    println!("  unindexed watcher      {seen} events");
    println!("  {NODES} indexed watchers    {indexed} events (each change reaches the old and the new node)");
    println!(
        "  stalled watcher        caught up with {caught_up} events (last generation {last_generation})"
    );
    println!("  parks, all watchers    {} (indexed watchers that fell behind and rejoined)", stats.parks);
    println!("  list pods/             {} objects at revision {revision}", pods.len());
    println!(
        "  window                 {} events, oldest usable revision {}",
        stats.window_len, stats.window_oldest
    );
    println!("  incoming high water    {} of {}", stats.incoming_high_water, stats.incoming_capacity);
    if let Some(Event::Added(entry) | Event::Modified(entry)) = last_change {
        println!("  last change            {} at revision {}", entry.key(), entry.revision());
    }
    assert_eq!(seen, total, "the unindexed watcher saw every change");
}
