//! Stress: several producers (or one upstream writer: sparse revisions, transactions,
//! progress, breaks and relists), a few hundred watchers with churn and stalls, every
//! stream checked against the model (rebuilt from the complete log, or kept by the
//! upstream writer as it writes); and lists racing a writer, each checked against the
//! state at the revision it reports. Sized down under Miri and ThreadSanitizer
//! (`WATCHCACHE_STRESS_SMALL`), bounded well under a minute otherwise.
mod common;
mod model;

use common::next;
use model::{FilterSpec, Model, Obj, Tracked, UpstreamWriter};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use watchcache::{
    At, Cacher, CacherBuilder, ListOptions, ManualClock, Readiness, SlowWatcherPolicy, Start, WatchError,
    WatchOptions,
};

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

fn builder(policy: SlowWatcherPolicy, window: usize) -> CacherBuilder<Obj> {
    Cacher::builder()
        .trigger(|object: &Obj| Some(object.node.as_str()))
        .slow_watcher_policy(policy)
        .window_capacity(window)
        .incoming_capacity(64)
        .clock(ManualClock::new())
}

/// Every watch a consumer thread ran: the ones still open at shutdown, and the finished.
type Consumed = (Vec<Tracked>, Vec<Tracked>);

/// Consumer threads, each with `per_thread` watches from `after` that read, stall, churn
/// and resume until the cacher stops.
fn consumers(
    cacher: &Cacher<Obj>,
    seed: u64,
    (after, per_thread): (u64, usize),
    start: &Arc<Barrier>,
) -> Vec<JoinHandle<Consumed>> {
    (0..CONSUMER_THREADS)
        .map(|id| {
            let cacher = cacher.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(seed.rotate_left(id as u32 * 7) | 1);
                let mut live: Vec<Tracked> = (0..per_thread)
                    .map(|_| open(&cacher, random_filter(&mut rng), after, &mut rng).unwrap())
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
                            None if rng.below(500) == 0 => Some(tracked.watch.revision()),
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
        .collect()
}

/// Checks every stream the consumers ran against `model`; returns how many.
fn check(consumers: Vec<JoinHandle<Consumed>>, model: &Model) -> usize {
    let mut checked = 0;
    for handle in consumers {
        let (live, finished) = handle.join().unwrap();
        for tracked in finished {
            tracked.check(model, false);
            checked += 1;
        }
        for mut tracked in live {
            while tracked.end.is_none() {
                let item = next(&mut tracked.watch);
                tracked.record(item);
            }
            tracked.check(model, true);
            checked += 1;
        }
    }
    checked
}

fn stress(policy: SlowWatcherPolicy, seed: u64) {
    eprintln!("stress {policy:?} seed {seed}");
    let (per_producer, per_thread) = sizes();
    let changes = per_producer * PRODUCERS as u64;
    let cacher = builder(policy, changes as usize + 1).build();
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
                    let key = random_key(&mut rng);
                    if rng.below(5) == 0 {
                        producer.delete(key).unwrap();
                    } else {
                        producer.put(key, random_object(&mut rng)).unwrap();
                    }
                }
            })
        })
        .collect();
    let consumers = consumers(&cacher, seed, (0, per_thread), &start);

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

    let checked = check(consumers, &model);
    assert!(checked >= CONSUMER_THREADS * per_thread);
    let stats = cacher.stats();
    eprintln!("checked {checked} streams; parks {} terminations {}", stats.parks, stats.terminations);
}

fn random_key(rng: &mut Rng) -> String {
    format!("{}/{}", ["a", "b"][rng.below(2) as usize], rng.below(50))
}

fn random_object(rng: &mut Rng) -> Obj {
    Obj { node: NODES[rng.below(NODES.len() as u64) as usize].to_string(), value: rng.below(1000) as u32 }
}

/// One upstream writer: transactions at sparse revisions, progress, breaks (changes the
/// cacher misses) and relists; it keeps the model of what the cacher was told.
fn stress_upstream(policy: SlowWatcherPolicy, seed: u64) {
    eprintln!("stress upstream {policy:?} seed {seed}");
    let (writes, per_thread) = sizes();
    // Room for every record: each write is at most three; each relist at most every key.
    let window = writes as usize * 3 + (writes as usize / 50 + 1) * 100;
    let (cacher, upstream) = builder(policy, window).upstream();
    let mut writer = UpstreamWriter::loaded(upstream, 1);
    common::settle(&cacher, writer.revision());
    let start = Arc::new(Barrier::new(1 + CONSUMER_THREADS));
    let consumers = consumers(&cacher, seed, (writer.revision(), per_thread), &start);

    let mut rng = Rng(seed ^ 0x5EED);
    start.wait();
    for _ in 0..writes {
        let skip = rng.below(3);
        match rng.below(50) {
            0 => writer.break_watch(),
            1 | 2 => writer.relist(skip + 1),
            3 | 4 => writer.progress(skip + 1),
            _ => {
                let mut changes: BTreeMap<String, Option<Obj>> = BTreeMap::new();
                for _ in 0..1 + rng.below(3) {
                    let object = (rng.below(5) != 0).then(|| random_object(&mut rng));
                    changes.insert(random_key(&mut rng), object);
                }
                writer.apply(skip, changes.into_iter().collect());
            }
        }
    }
    cacher.shutdown();
    let checked = check(consumers, &writer.model);
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

#[test]
fn stress_upstream_park() {
    stress_upstream(SlowWatcherPolicy::Park, seed());
}

#[test]
fn stress_upstream_terminate() {
    stress_upstream(SlowWatcherPolicy::Terminate, seed());
}

/// Keys of the listing stress: enough for the store's B-tree to have branches, so a
/// change copies a path that a reader's snapshot still shares.
const LISTED_KEYS: u64 = 512;
const LIST_READERS: usize = 2;

/// One writer puts and deletes while readers list. Every list must be the state after
/// exactly the changes up to the revision it reports (the writer is alone, so change `r`
/// takes revision `r`), and a reader's lists never go back. Readers drop the snapshots
/// they listed from, so nodes the dispatcher has since copied are freed on their threads;
/// under ThreadSanitizer, build with `--cfg tsan` as `.ci/run` does (`src/store.rs` says
/// why).
#[test]
fn lists_racing_a_writer_are_each_one_whole_revision() {
    let mut rng = Rng(seed());
    eprintln!("seed {}", rng.0);
    // Many changes per list, so that the snapshot a reader lists from is often one the
    // dispatcher has since moved past and copied paths of.
    let changes = sizes().0 * if cfg!(miri) { 1 } else { 10 };
    // The changes, decided up front: a delete only of a key that is there, so each one
    // takes a revision.
    let mut live = BTreeMap::new();
    let changes: Arc<Vec<(String, Option<u64>)>> = Arc::new(
        (1..=changes)
            .map(|revision| {
                let key = format!("k{:03}", rng.below(LISTED_KEYS));
                let object = if live.contains_key(&key) && rng.below(3) == 0 { None } else { Some(revision) };
                apply(&mut live, key.clone(), object);
                (key, object)
            })
            .collect(),
    );
    let cacher: Cacher<u64> = Cacher::builder().build();
    let start = Arc::new(Barrier::new(LIST_READERS + 1));
    let written = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..LIST_READERS)
        .map(|_| {
            let (cacher, changes, start, written) =
                (cacher.clone(), changes.clone(), start.clone(), written.clone());
            std::thread::spawn(move || {
                let mut state = BTreeMap::new();
                let (mut applied, mut lists) = (0, 0);
                start.wait();
                while applied < changes.len() {
                    // Once every change is published, wait for the last revision (or fail
                    // after the cacher's wait) rather than list forever short of it.
                    let at = if written.load(Ordering::Acquire) { changes.len() } else { 0 };
                    let list = cacher.list(ListOptions::new().at(At::AtLeast(at as u64))).unwrap();
                    let revision = list.revision as usize;
                    assert!(revision >= applied, "a list went back from {applied} to {revision}");
                    for (key, object) in &changes[applied..revision] {
                        apply(&mut state, key.as_str(), *object);
                    }
                    applied = revision;
                    let listed: Vec<_> = list.items.iter().map(|(key, object)| (&**key, **object)).collect();
                    let expected: Vec<_> = state.iter().map(|(key, object)| (*key, *object)).collect();
                    assert_eq!(listed, expected, "the list at revision {revision}");
                    lists += 1;
                }
                lists
            })
        })
        .collect();
    let producer = cacher.producer();
    start.wait();
    for (key, object) in changes.iter() {
        match object {
            Some(object) => producer.put(key.as_str(), *object).unwrap(),
            None => producer.delete(key.as_str()).unwrap(),
        }
    }
    written.store(true, Ordering::Release);
    let lists: usize = readers.into_iter().map(|reader| reader.join().unwrap()).sum();
    eprintln!("checked {lists} lists of {} changes", changes.len());
}

/// Applies one change of the listing stress to a model of the state.
fn apply<K: Ord>(state: &mut BTreeMap<K, u64>, key: K, object: Option<u64>) {
    match object {
        Some(object) => state.insert(key, object),
        None => state.remove(&key),
    };
}
