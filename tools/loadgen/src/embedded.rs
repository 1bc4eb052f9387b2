//! The run against an embedded cacher: open-loop producers on threads, watchers on
//! threads or tasks, every delivery timed.
//!
//! Objects never change their trigger value, so every watcher's expected deliveries are
//! known exactly and the report states any loss.

use crate::config::{Config, Consumers, Policy, Receive};
use crate::report::{histogram, Latencies, Percentiles, Report};
use crate::usage::Usage;
use hdrhistogram::Histogram;
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

/// What one watcher saw.
struct Consumed {
    deliveries: u64,
    /// From the `put` call to delivery.
    latency: Histogram<u64>,
    /// From the intended send time to delivery.
    intended_latency: Histogram<u64>,
    expiries: u64,
    stalls: bool,
}

impl Consumed {
    fn new(stalls: bool) -> Self {
        Self { deliveries: 0, latency: histogram(), intended_latency: histogram(), expiries: 0, stalls }
    }

    fn record(&mut self, event: EventRef<'_, Payload>, start: Instant) {
        let Some(payload) = event.object() else { return };
        let now = nanos(start.elapsed());
        let micros = |since: u64| now.saturating_sub(since) / 1000;
        self.latency.record(micros(payload.sent_nanos)).expect("an auto-resizing histogram takes any value");
        self.intended_latency
            .record(micros(payload.intended_nanos))
            .expect("an auto-resizing histogram takes any value");
        self.deliveries += 1;
    }

    /// Where to watch from after `end`, or `None` to stop (shutdown).
    fn resume_after(&mut self, end: WatchError) -> Option<u64> {
        match end {
            WatchError::TooSlow { resume_from } => Some(resume_from),
            WatchError::Expired { oldest, .. } => {
                self.expiries += 1;
                Some(oldest)
            }
            _ => None,
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
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
                Receive::Batch => watch.visit(BATCH, |event| consumed.record(event, self.start)),
                Receive::One => {
                    watch.recv().map(|event| consumed.record(event.as_ref(), self.start)).map(|()| 1)
                }
            };
            if let Err(end) = outcome {
                let Some(next) =
                    consumed.resume_after(end).and_then(|from| self.watch(Start::Revision(from)))
                else {
                    return consumed;
                };
                watch = next;
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
                Receive::Batch => watch.visit_async(BATCH, |event| consumed.record(event, self.start)).await,
                Receive::One => match watch.next().await {
                    Some(Ok(event)) => {
                        consumed.record(event.as_ref(), self.start);
                        Ok(1)
                    }
                    Some(Err(end)) => Err(end),
                    None => return consumed,
                },
            };
            if let Err(end) = outcome {
                let Some(next) =
                    consumed.resume_after(end).and_then(|from| self.watch(Start::Revision(from)))
                else {
                    return consumed;
                };
                watch = next;
            }
        }
    }
}

/// What one producer sent.
struct Sent {
    events: u64,
    lag: Histogram<u64>,
    /// The producer thread's own CPU time (pacing, building payloads, publishing).
    cpu: Duration,
}

/// When event `index` of a producer is due, `interval_nanos` apart: in 64-bit
/// nanoseconds (584 years), so no send count wraps it.
fn scheduled(interval_nanos: u64, index: u64) -> Duration {
    Duration::from_nanos(interval_nanos.saturating_mul(index))
}

/// Publishes on its schedule until `duration` has passed: sleeps until the next event
/// is due, then sends every event that is due (so an oversleep is a burst, not a drift),
/// each stamped with when it was meant to go and when `put` was called.
fn produce(
    config: &Config,
    id: u64,
    cacher: &Cacher<Payload>,
    start: Instant,
    per_node: &[AtomicU64],
) -> Sent {
    let producer = cacher.producer();
    let duration = Duration::from_secs_f64(config.duration);
    let interval_nanos = (config.rate > 0).then(|| config.producers * 1_000_000_000 / config.rate);
    let mut sent = Sent { events: 0, lag: histogram(), cpu: Duration::ZERO };
    loop {
        let intended = match interval_nanos {
            Some(interval) => scheduled(interval, sent.events),
            None => start.elapsed(),
        };
        if intended >= duration {
            sent.cpu = Usage::this_thread().cpu;
            return sent;
        }
        if let Some(wait) = intended.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        let key = sent.events % config.keys;
        let node = (key * 31 + id) % config.trigger_cardinality;
        let sent_at = start.elapsed();
        let payload = Payload {
            node: format!("node-{node}"),
            intended_nanos: nanos(intended),
            sent_nanos: nanos(sent_at),
            _bytes: vec![0; config.object_size].into_boxed_slice(),
        };
        if producer.put(format!("obj/{id}/{key}"), payload).is_err() {
            sent.cpu = Usage::this_thread().cpu;
            return sent;
        }
        let lag = sent_at.saturating_sub(intended);
        sent.lag.record(nanos(lag) / 1000).expect("an auto-resizing histogram takes any value");
        per_node[node as usize].fetch_add(1, Ordering::Relaxed);
        sent.events += 1;
    }
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
            std::thread::spawn(move || produce(&config, id, &cacher, start, &per_node))
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
        send_lag_micros: Percentiles::of(&send_lag),
        cpu_seconds: usage.cpu.saturating_sub(usage_before.cpu).as_secs_f64(),
        producer_cpu_seconds: producer_cpu.as_secs_f64(),
        peak_rss_bytes: usage.peak_rss_bytes,
        window_events,
    }
}

/// Where a watcher runs.
enum Consumer {
    Thread(std::thread::JoinHandle<Consumed>),
    Task(tokio::task::JoinHandle<Consumed>),
}

#[cfg(test)]
mod tests {
    use super::scheduled;
    use std::time::Duration;

    #[test]
    fn schedules_past_2_pow_32_events_do_not_wrap() {
        let index = (1u64 << 32) + 5;
        assert_eq!(scheduled(20_000, index), Duration::from_nanos(20_000 * index));
        assert!(scheduled(20_000, index) > scheduled(20_000, 5), "it wrapped when computed with `as u32`");
    }
}
