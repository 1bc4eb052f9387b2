//! The run against an embedded cacher: open-loop producers on threads, watchers on
//! threads or tasks, every delivery timed.
//!
//! Objects never change their trigger value, so every watcher's expected deliveries are
//! known exactly and the report states any loss.

use crate::config::{Config, Consumers, Policy, Receive};
use crate::report::{histogram, spectrum, Latencies, Percentiles, Report, RingFigures};
use crate::timing::{produce, Change, Consumed};
use crate::usage::Usage;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use watchcache::{Cacher, EventRef, SlowWatcherPolicy, Start, Watch, WatchError, WatchOptions};

/// The most events a batch consumer takes per call.
const BATCH: usize = 256;

/// One published object: its trigger value, its schedule, a payload.
#[derive(Debug)]
struct Payload {
    node: String,
    /// When the producer meant to send it, nanoseconds after the run's start.
    intended_nanos: u64,
    /// When the producer called `put`, nanoseconds after the run's start.
    sent_nanos: u64,
    _bytes: Box<[u8]>,
}

/// Records `event`'s delivery (bookmarks carry no payload).
fn record(consumed: &mut Consumed, event: EventRef<'_, Payload>, start: Instant) {
    if let Some(payload) = event.object() {
        consumed.record(payload.intended_nanos, payload.sent_nanos, start);
    }
}

/// Where to watch from after `end`, or `None` to stop (shutdown).
fn resume_after(consumed: &mut Consumed, end: WatchError) -> Option<u64> {
    match end {
        WatchError::TooSlow { resume_from } => Some(resume_from),
        WatchError::Expired { oldest, .. } => {
            consumed.expiries += 1;
            Some(oldest)
        }
        _ => None,
    }
}

/// One watcher's settings.
#[derive(Clone)]
struct Watcher {
    cacher: Cacher<Payload>,
    node: Option<String>,
    /// Stall for this long, once every this often.
    stall: Option<(Duration, Duration)>,
    receive: Receive,
    start: Instant,
}

impl Watcher {
    fn watch(&self, from: Start) -> Option<Watch<Payload>> {
        let options = WatchOptions::new().start(from);
        let options = match &self.node {
            Some(node) => options.trigger(node.clone()),
            None => options,
        };
        self.cacher.watch(options).ok()
    }

    /// The watch to go on with after `end`, or `None` to stop (shutdown).
    fn resume(&self, consumed: &mut Consumed, end: WatchError) -> Option<Watch<Payload>> {
        resume_after(consumed, end).and_then(|from| self.watch(Start::Revision(from)))
    }

    /// Whether a stall is due now (and restarts its period).
    fn stall_due(&self, last_stall: &mut Instant) -> Option<Duration> {
        let (length, every) = self.stall?;
        (last_stall.elapsed() >= every).then(|| {
            *last_stall = Instant::now() + length;
            length
        })
    }

    /// Consumes on this thread until shutdown.
    fn run_on_thread(self, mut watch: Watch<Payload>) -> Consumed {
        let mut consumed = Consumed::new(self.stall.is_some());
        let mut last_stall = Instant::now();
        loop {
            if let Some(length) = self.stall_due(&mut last_stall) {
                std::thread::sleep(length);
            }
            let outcome = match self.receive {
                Receive::Batch => watch.visit(BATCH, |event| record(&mut consumed, event, self.start)),
                Receive::One => {
                    watch.recv().map(|event| record(&mut consumed, event.as_ref(), self.start)).map(|()| 1)
                }
            };
            if let Err(end) = outcome {
                match self.resume(&mut consumed, end) {
                    Some(next) => watch = next,
                    None => return consumed,
                }
            }
        }
    }

    /// Consumes in a task until shutdown.
    async fn run_in_task(self, mut watch: Watch<Payload>) -> Consumed {
        use futures_util::StreamExt;
        let mut consumed = Consumed::new(self.stall.is_some());
        let mut last_stall = Instant::now();
        loop {
            if let Some(length) = self.stall_due(&mut last_stall) {
                tokio::time::sleep(length).await;
            }
            let outcome = match self.receive {
                Receive::Batch => {
                    watch.visit_async(BATCH, |event| record(&mut consumed, event, self.start)).await
                }
                Receive::One => match watch.next().await {
                    Some(Ok(event)) => {
                        record(&mut consumed, event.as_ref(), self.start);
                        Ok(1)
                    }
                    Some(Err(end)) => Err(end),
                    None => return consumed,
                },
            };
            if let Err(end) = outcome {
                match self.resume(&mut consumed, end) {
                    Some(next) => watch = next,
                    None => return consumed,
                }
            }
        }
    }
}

/// Publishes `change` into the cacher; false once it has shut down.
fn put(producer: &watchcache::Producer<Payload>, id: u64, config: &Config, change: Change) -> bool {
    let payload = Payload {
        node: format!("node-{}", change.node),
        intended_nanos: change.intended_nanos,
        sent_nanos: change.sent_nanos,
        _bytes: vec![0; config.object_size].into_boxed_slice(),
    };
    producer.put(format!("obj/{id}/{}", change.key), payload).is_ok()
}

/// Runs the load described by `config`; `progress` is called about once a second with
/// the share of the duration done.
pub fn run(config: &Config, mut progress: impl FnMut(f64)) -> Report {
    let mut builder = Cacher::builder()
        .trigger(|payload: &Payload| Some(payload.node.as_str()))
        .slow_watcher_policy(match config.policy {
            Policy::Park => SlowWatcherPolicy::Park,
            Policy::Terminate => SlowWatcherPolicy::Terminate,
        });
    if let Some(window) = config.window {
        builder = builder.window_capacity(window);
    }
    if let Some(buffer) = config.buffer {
        builder = builder.watcher_buffer(buffer);
    }
    builder = builder.batch_window(Duration::from_micros(config.batch_window_micros));
    let cacher: Cacher<Payload> = builder.build();
    let usage_before = Usage::now();
    let start = Instant::now();
    let (indexed, slow) = config.split();

    let runtime = (config.consumers == Consumers::Tasks).then(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .expect("a tokio runtime")
    });
    let watchers: Vec<_> = (0..config.watchers)
        .map(|index| {
            let watcher = Watcher {
                cacher: cacher.clone(),
                node: (index < indexed).then(|| format!("node-{}", index % config.trigger_cardinality)),
                stall: (index >= config.watchers - slow).then(|| {
                    (Duration::from_millis(config.stall_ms), Duration::from_millis(config.stall_every_ms))
                }),
                receive: config.receive,
                start,
            };
            let watch = watcher.watch(Start::Now).expect("the cacher is ready");
            match &runtime {
                Some(runtime) => Consumer::Task(runtime.spawn(watcher.run_in_task(watch))),
                None => Consumer::Thread(std::thread::spawn(move || watcher.run_on_thread(watch))),
            }
        })
        .collect();

    let per_node: Arc<Vec<AtomicU64>> =
        Arc::new((0..config.trigger_cardinality).map(|_| AtomicU64::new(0)).collect());
    let duration = Duration::from_secs_f64(config.duration);
    let producers: Vec<_> = (0..config.producers)
        .map(|id| {
            let (config, cacher, per_node) = (config.clone(), cacher.clone(), per_node.clone());
            std::thread::spawn(move || {
                let producer = cacher.producer();
                produce(&config, id, start, &per_node, |change| put(&producer, id, &config, change))
            })
        })
        .collect();

    while start.elapsed() < duration {
        progress(start.elapsed().as_secs_f64() / duration.as_secs_f64());
        std::thread::sleep(Duration::from_secs(1).min(duration.saturating_sub(start.elapsed())));
    }
    progress(1.0);
    let mut send_lag = histogram();
    let (mut events, mut producer_cpu) = (0, Duration::ZERO);
    for producer in producers {
        let sent = producer.join().expect("producer thread");
        events += sent.events;
        producer_cpu += sent.cpu;
        send_lag.add(&sent.lag).expect("histograms of one shape");
    }
    let elapsed = start.elapsed();
    let window_events = cacher.stats().window_len;
    cacher.shutdown();

    let mut latencies = Latencies::new();
    let mut intended = histogram();
    let (mut deliveries, mut expiries, mut expected_deliveries) = (0, 0, 0);
    for (index, watcher) in watchers.into_iter().enumerate() {
        let consumed = match watcher {
            Consumer::Thread(thread) => thread.join().expect("watcher thread"),
            Consumer::Task(task) => {
                runtime.as_ref().expect("tasks run on the runtime").block_on(task).expect("watcher task")
            }
        };
        deliveries += consumed.deliveries;
        expiries += consumed.expiries;
        latencies.add(&consumed.latency, consumed.stalls);
        intended.add(&consumed.intended_latency).expect("histograms of one shape");
        expected_deliveries += if (index as u64) < indexed {
            per_node[index % config.trigger_cardinality as usize].load(Ordering::Relaxed)
        } else {
            events
        };
    }
    let stats = cacher.stats();
    let usage = Usage::now();
    Report {
        config: config.clone(),
        events,
        elapsed,
        deliveries,
        expected_deliveries,
        forced_closes: stats.terminations,
        parks: stats.parks,
        expiries,
        latency_micros: Percentiles::of(&latencies.all),
        healthy_latency_micros: Percentiles::of(&latencies.healthy),
        intended_latency_micros: Percentiles::of(&intended),
        intended_latency_spectrum: spectrum(&intended),
        send_lag_micros: Percentiles::of(&send_lag),
        cpu_seconds: usage.cpu.saturating_sub(usage_before.cpu).as_secs_f64(),
        producer_cpu_seconds: producer_cpu.as_secs_f64(),
        peak_rss_bytes: usage.peak_rss_bytes,
        window_events,
        ring: Some(RingFigures { high_water: stats.incoming_high_water, capacity: stats.incoming_capacity }),
        server: None,
    }
}

/// Where a watcher runs.
enum Consumer {
    Thread(std::thread::JoinHandle<Consumed>),
    Task(tokio::task::JoinHandle<Consumed>),
}
