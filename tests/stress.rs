//! Stress: several producers, a few hundred watchers with churn and stalls, every stream
//! checked against the model rebuilt from the complete log. Sized down under Miri and
//! ThreadSanitizer (`--cfg stress_small`), bounded well under a minute otherwise.
mod common;
mod model;

use common::next;
use model::{FilterSpec, Model, Obj, Tracked};
use std::sync::{Arc, Barrier};
use watchcache::{Cacher, ManualClock, Readiness, SlowWatcherPolicy, Start, WatchError, WatchOptions};

const PRODUCERS: usize = 3;
const CONSUMER_THREADS: usize = 4;
const NODES: [&str; 4] = ["n0", "n1", "n2", "n3"];

fn sizes() -> (u64, usize) {
    // (changes per producer, watchers per consumer thread)
    if cfg!(miri) {
        (30, 3)
    } else if std::env::var_os("WATCHCACHE_STRESS_SMALL").is_some() {
        (2_000, 20)
    } else {
        (20_000, 60)
    }
}

/// A small, seeded generator; the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn random_filter(rng: &mut Rng) -> FilterSpec {
    FilterSpec {
        prefix: ["", "a/", "b/"][rng.below(3) as usize],
        trigger: (rng.below(2) == 0).then(|| NODES[rng.below(NODES.len() as u64) as usize].to_string()),
        even_only: rng.below(4) == 0,
    }
}

/// A tracked watch from `after`; `None` once the cacher has shut down.
fn open(cacher: &Cacher<Obj>, filter: FilterSpec, after: u64, rng: &mut Rng) -> Option<Tracked> {
    let mut options = WatchOptions::new()
        .prefix(filter.prefix)
        .start(Start::Revision(after))
        .buffer(1 + rng.below(8) as usize);
    if let Some(node) = &filter.trigger {
        options = options.trigger(node.clone());
    }
    if filter.even_only {
        options = options.predicate(|object: &Obj| object.value % 2 == 0);
    }
    match cacher.watch(options) {
        Ok(watch) => Some(Tracked::new(watch, filter, Some(after))),
        Err(WatchError::Closed) => None,
        Err(other) => panic!("the window holds every revision, yet {other:?}"),
    }
}

fn stress(policy: SlowWatcherPolicy, seed: u64) {
    eprintln!("stress {policy:?} seed {seed}");
    let (per_producer, per_thread) = sizes();
    let changes = per_producer * PRODUCERS as u64;
    let cacher: Cacher<Obj> = Cacher::builder()
        .trigger(|object: &Obj| Some(object.node.as_str()))
        .slow_watcher_policy(policy)
        .window_capacity(changes as usize + 1)
        .incoming_capacity(64)
        .clock(ManualClock::new())
        .build();
    let log = cacher.watch(WatchOptions::new().start(Start::Revision(0)).buffer(usize::MAX >> 8)).unwrap();
    let start = Arc::new(Barrier::new(PRODUCERS + CONSUMER_THREADS));

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|id| {
            let producer = cacher.producer();
            let start = start.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(seed ^ ((id as u64 + 1) * 0x9E37_79B9));
                start.wait();
                for _ in 0..per_producer {
                    let key = format!("{}/{}", ["a", "b"][rng.below(2) as usize], rng.below(50));
                    if rng.below(5) == 0 {
                        producer.delete(key).unwrap();
                    } else {
                        let node = NODES[rng.below(NODES.len() as u64) as usize].to_string();
                        producer.put(key, Obj { node, value: rng.below(1000) as u32 }).unwrap();
                    }
                }
            })
        })
        .collect();

    let consumers: Vec<_> = (0..CONSUMER_THREADS)
        .map(|id| {
            let cacher = cacher.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(seed.rotate_left(id as u32 * 7) | 1);
                let mut live: Vec<Tracked> = (0..per_thread)
                    .map(|_| open(&cacher, random_filter(&mut rng), 0, &mut rng).unwrap())
                    .collect();
                let mut finished = Vec::new();
                start.wait();
                let mut round = 0u64;
                while cacher.readiness() != Readiness::Stopped {
                    round += 1;
                    for (index, tracked) in live.iter_mut().enumerate() {
                        // A quarter of the watchers stall for long stretches.
                        if index % 4 == 0 && (round / 64) % 2 == 0 {
                            continue;
                        }
                        for _ in 0..rng.below(32) {
                            if !tracked.try_take() {
                                break;
                            }
                        }
                        let restart = match &tracked.end {
                            Some(WatchError::TooSlow { resume_from }) => Some(*resume_from),
                            // Shut down mid-round: checked with the rest at the end.
                            Some(WatchError::Closed) => None,
                            Some(other) => panic!("unexpected end {other:?}"),
                            // Churn: now and then a watch is dropped and another opened.
                            None if rng.below(500) == 0 => Some(cacher.revision()),
                            None => None,
                        };
                        if let Some(after) = restart {
                            let filter = random_filter(&mut rng);
                            if let Some(new) = open(&cacher, filter, after, &mut rng) {
                                finished.push(std::mem::replace(tracked, new));
                            }
                        }
                    }
                    std::thread::yield_now();
                }
                (live, finished)
            })
        })
        .collect();

    producers.into_iter().for_each(|handle| handle.join().unwrap());
    // Shutdown applies every accepted change; deletes of missing keys take no revision.
    cacher.shutdown();

    let mut log = log;
    let mut events = Vec::new();
    loop {
        match next(&mut log) {
            Ok(event) => events.push(event),
            Err(error) => {
                assert_eq!(error, WatchError::Closed);
                break;
            }
        }
    }
    let model = Model::from_events(&events);
    assert_eq!(model.revision() + cacher.stats().deletes_of_missing_keys, changes, "no change lost");

    let mut checked = 0;
    for handle in consumers {
        let (live, finished) = handle.join().unwrap();
        for tracked in finished {
            tracked.check(&model, false);
            checked += 1;
        }
        for mut tracked in live {
            while tracked.end.is_none() {
                let item = next(&mut tracked.watch);
                tracked.record(item);
            }
            tracked.check(&model, true);
            checked += 1;
        }
    }
    assert!(checked >= CONSUMER_THREADS * per_thread);
    let stats = cacher.stats();
    eprintln!("checked {checked} streams; parks {} terminations {}", stats.parks, stats.terminations);
}

fn seed() -> u64 {
    std::env::var("WATCHCACHE_SEED").ok().and_then(|seed| seed.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_nanos() as u64 | 1)
    })
}

#[test]
fn stress_park() {
    stress(SlowWatcherPolicy::Park, seed());
}

#[test]
fn stress_terminate() {
    stress(SlowWatcherPolicy::Terminate, seed());
}
