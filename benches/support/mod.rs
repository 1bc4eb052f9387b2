//! What the bench groups share: one group configuration run over every peer and
//! parameter, the timed thread pair, pacing for `tokio::sync::broadcast` (which drops for
//! a lapped receiver instead of waiting), the runtime consumer tasks run on and the
//! moment their run ends, the pod-shaped workload of the indexed groups with its
//! publish-then-finish timing, and a writer for either of watchcache's modes.
// Each bench binary uses a subset of these helpers.
#![allow(dead_code, unreachable_pub)]

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A group with the settings every group here uses: 10 samples of a run that takes long
/// enough to cover parking, waking and batching (this machine is noisy; medians are
/// compared by ratio, see PERF.md).
fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group.sample_size(10).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    group
}

/// One peer's timed run: `elements` is what the run moves (events or deliveries), used as
/// the group's throughput, so peers that move fewer elements per run compare fairly.
pub struct Peer<P> {
    pub name: &'static str,
    pub elements: fn(P) -> u64,
    pub run: fn(P) -> Duration,
}

/// The group `name`: every peer on every parameter, each timed run from scratch (set-up
/// outside the clock).
pub fn bench_group<P: Copy + std::fmt::Display>(
    c: &mut Criterion,
    name: &str,
    parameters: impl IntoIterator<Item = P>,
    peers: &[Peer<P>],
) {
    let mut group = group(c, name);
    for parameter in parameters {
        for peer in peers {
            group.throughput(Throughput::Elements((peer.elements)(parameter)));
            group.bench_function(BenchmarkId::new(peer.name, parameter), |b| {
                b.iter_custom(|iters| (0..iters).map(|_| (peer.run)(parameter)).sum())
            });
        }
    }
    group.finish();
}

/// Runs `produce` on `producers` threads (each given its index) and `consume` on one
/// more; the clock runs from before the first send to the consumer's return.
pub fn timed(producers: usize, produce: impl Fn(usize) + Sync, consume: impl FnOnce() + Send) -> Duration {
    std::thread::scope(|scope| {
        let consumer = scope.spawn(consume);
        let start = Instant::now();
        let produce = &produce;
        let senders: Vec<_> = (0..producers).map(|index| scope.spawn(move || produce(index))).collect();
        senders.into_iter().for_each(|sender| sender.join().unwrap());
        consumer.join().unwrap();
        start.elapsed()
    })
}

/// Keeps `tokio::sync::broadcast` senders less than one channel's worth ahead of the
/// slowest receiver, so that a run measures delivery rather than `Lagged` errors.
pub struct Pacer {
    sent: AtomicU64,
    /// The slowest receiver's count when last computed; recomputed only when the senders
    /// reach the limit, so a send does not scan every receiver.
    slowest: AtomicU64,
    received: Vec<AtomicU64>,
    limit: u64,
}

impl Pacer {
    /// For `receivers` receivers on a channel of `capacity`; leaves room for a few
    /// senders racing past the check at once.
    pub fn new(receivers: usize, capacity: usize) -> Self {
        Self {
            sent: AtomicU64::new(0),
            slowest: AtomicU64::new(0),
            received: (0..receivers).map(|_| AtomicU64::new(0)).collect(),
            limit: capacity as u64 * 7 / 8,
        }
    }

    /// Waits (yielding) until one more send cannot lap any receiver, then counts it.
    pub fn before_send(&self) {
        while self.sent.load(Ordering::Relaxed) - self.slowest.load(Ordering::Relaxed) >= self.limit {
            let slowest = self.received.iter().map(|count| count.load(Ordering::Relaxed)).min().unwrap_or(0);
            self.slowest.fetch_max(slowest, Ordering::Relaxed);
            std::thread::yield_now();
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Records that `receiver` has taken `count` messages so far.
    pub fn received(&self, receiver: usize, count: u64) {
        self.received[receiver].store(count, Ordering::Relaxed);
    }
}

/// The runtime that runs consumer tasks: two workers, one per core of the machine the
/// numbers in PERF.md come from.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap())
}

/// The consumer tasks of one timed run. The clock stops when the last task has done its
/// work, before any join handle is awaited (awaiting 100,000 handles is not delivery),
/// and the handles are joined afterwards to pass on a panic; every peer alike.
pub struct Tasks {
    handles: Vec<tokio::task::JoinHandle<()>>,
    finish: std::sync::Arc<Finish>,
}

/// Counts tasks down; the last one wakes the thread that waits.
struct Finish {
    remaining: std::sync::atomic::AtomicUsize,
    waiter: std::thread::Thread,
}

impl Tasks {
    /// Spawns `work` on the runtime; the calling thread is the one that waits.
    pub fn spawn<F>(work: Vec<F>) -> Self
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let finish = std::sync::Arc::new(Finish {
            remaining: std::sync::atomic::AtomicUsize::new(work.len()),
            waiter: std::thread::current(),
        });
        let handles = work
            .into_iter()
            .map(|task| {
                let finish = finish.clone();
                runtime().spawn(async move {
                    task.await;
                    if finish.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                        finish.waiter.unpark();
                    }
                })
            })
            .collect();
        Self { handles, finish }
    }

    /// Waits until every task has done its work, then joins them; returns the time
    /// since `start` at the moment the last one was done.
    pub fn finish(self, start: Instant) -> Duration {
        while self.finish.remaining.load(Ordering::Acquire) > 0 {
            std::thread::park();
        }
        let elapsed = start.elapsed();
        runtime().block_on(async {
            for handle in self.handles {
                handle.await.unwrap();
            }
        });
        elapsed
    }
}

/// A pod-like object whose trigger value is the node it runs on.
#[derive(Debug, PartialEq)]
pub struct Pod {
    pub node: String,
}

/// The name of node `index`.
pub fn node(index: usize) -> String {
    format!("node-{index}")
}

/// `events` changes with distinct keys (so each is an `Added`), event `e` on node
/// `e % nodes`. Built before the clock starts.
pub fn pods(events: u64, nodes: usize) -> Vec<(String, Pod)> {
    (0..events).map(|event| (format!("pod-{event}"), Pod { node: node(event as usize % nodes) })).collect()
}

/// A cacher indexed by `Pod::node`.
pub fn indexed_cacher() -> watchcache::CacherBuilder<Pod> {
    watchcache::Cacher::builder().trigger(|pod: &Pod| Some(pod.node.as_str()))
}

/// Waits until the dispatcher has registered `watches` watches, so that the clock starts
/// with every watch in live dispatch rather than replaying the window.
pub fn wait_registered<T: Send + Sync + 'static>(cacher: &watchcache::Cacher<T>, watches: usize) {
    let registered = || {
        let stats = cacher.stats();
        stats.watchers_indexed + stats.watchers_unindexed
    };
    while registered() < watches {
        std::thread::yield_now();
    }
}

/// Which of watchcache's modes a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The cacher numbers changes itself; producers publish.
    Embedded,
    /// The cacher follows an upstream: each change is applied at the upstream's revision,
    /// every third one (as one prefix of a busier store sees them).
    Upstream,
}

/// The writing side of a bench cacher, in either mode.
pub enum Writer<T> {
    Producer(watchcache::Producer<T>),
    Upstream { upstream: watchcache::Upstream<T>, revision: u64 },
}

impl<T: PartialEq + Send + Sync + 'static> Writer<T> {
    /// Builds `builder` in `mode`; an upstream cacher is loaded (empty) and ready on
    /// return.
    pub fn build(builder: watchcache::CacherBuilder<T>, mode: Mode) -> (watchcache::Cacher<T>, Self) {
        match mode {
            Mode::Embedded => {
                let cacher = builder.build();
                let producer = cacher.producer();
                (cacher, Self::Producer(producer))
            }
            Mode::Upstream => {
                let (cacher, mut upstream) = builder.upstream();
                upstream
                    .relist(0, Vec::<(String, T)>::new())
                    .unwrap_or_else(|_| panic!("the cacher stopped"));
                cacher.list(watchcache::ListOptions::new().at(watchcache::At::AtLeast(0))).unwrap();
                (cacher, Self::Upstream { upstream, revision: 0 })
            }
        }
    }

    /// Sets `key` to `object`, waiting while the incoming ring is full.
    pub fn put(&mut self, key: impl Into<std::sync::Arc<str>>, object: T) {
        let stopped = match self {
            Self::Producer(producer) => producer.put(key, object).is_err(),
            Self::Upstream { upstream, revision } => {
                *revision += 3;
                upstream.apply(*revision, [watchcache::Change::put(key, object)]).is_err()
            }
        };
        assert!(!stopped, "the cacher stopped");
    }
}

/// Publishes `workload` and waits for every consumer task; the clock runs from the first
/// put until the last task is done.
pub fn publish_and_join<T: PartialEq + Send + Sync + 'static>(
    writer: &mut Writer<T>,
    workload: Vec<(String, T)>,
    tasks: Tasks,
) -> Duration {
    let start = Instant::now();
    for (key, object) in workload {
        writer.put(key, object);
    }
    tasks.finish(start)
}
