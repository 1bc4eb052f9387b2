//! The watchcache load generator: producers publish at a target rate (open loop) into an
//! embedded cacher while watchers — indexed by a trigger value or unindexed, some of them
//! stalling — consume; the report gives throughput, latency percentiles measured from
//! each event's *intended* send time (coordinated omission corrected), forced closes,
//! parks, CPU time and peak memory.
//!
//! Objects never change their trigger value, so every watcher's expected deliveries are
//! known exactly and the report states any loss.

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use watchcache::{Cacher, RecvTimeoutError, SlowWatcherPolicy, Start, WatchError, WatchOptions};

/// The slow-watcher policy, as a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Policy {
    /// Park slow watchers; they catch up from the window.
    Park,
    /// Terminate slow watchers after the dispatch budget.
    Terminate,
}

/// What to run. Every flag has a default; with none the run takes about 15 s.
#[derive(Debug, Clone, Parser)]
#[command(name = "watchcache-loadgen", about = "Drive an embedded watchcache and report what it delivered")]
pub struct Config {
    /// Producer threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub producers: u64,
    /// Watchers, each consumed by its own thread.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(0..=4096))]
    pub watchers: u64,
    /// Share of watchers indexed by a trigger value (0 to 1); the rest see every event.
    #[arg(long, default_value_t = 0.5, value_parser = share)]
    pub indexed_share: f64,
    /// Distinct trigger values (nodes).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub trigger_cardinality: u64,
    /// Distinct keys per producer.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub keys: u64,
    /// Payload bytes per object.
    #[arg(long, default_value_t = 64)]
    pub object_size: usize,
    /// How long producers publish, in seconds.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    pub duration: f64,
    /// Target events per second across producers (open loop); 0 publishes as fast as
    /// the cacher accepts (closed loop).
    #[arg(long, default_value_t = 100_000)]
    pub rate: u64,
    /// Share of watchers that stall (0 to 1).
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub slow_share: f64,
    /// A stalling watcher stops reading for this many milliseconds…
    #[arg(long, default_value_t = 200)]
    pub stall_ms: u64,
    /// …once every this many milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub stall_every_ms: u64,
    /// What the cacher does with a watcher whose buffer is full.
    #[arg(long, value_enum, default_value_t = Policy::Park)]
    pub policy: Policy,
    /// Window capacity in events (default: the cacher's growing window).
    #[arg(long)]
    pub window: Option<usize>,
    /// Buffer per watcher in events (default: by kind).
    #[arg(long)]
    pub buffer: Option<usize>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn share(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|_| format!("`{text}` is not a number"))?;
    (0.0..=1.0).contains(&value).then_some(value).ok_or_else(|| format!("{value} is not between 0 and 1"))
}

fn seconds(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|_| format!("`{text}` is not a number"))?;
    (value > 0.0 && value <= 86_400.0)
        .then_some(value)
        .ok_or_else(|| format!("{value} s is not in (0, 86400]"))
}

/// One published object: its trigger value, when it was meant to be sent, a payload.
#[derive(Debug)]
struct Payload {
    node: String,
    /// Intended send time, nanoseconds after the run's start.
    intended_nanos: u64,
    _bytes: Box<[u8]>,
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Events published (and applied).
    pub events: u64,
    /// How long producers published.
    pub elapsed: Duration,
    /// Events delivered to watchers.
    pub deliveries: u64,
    /// Deliveries the events' trigger values call for.
    pub expected_deliveries: u64,
    /// Watchers terminated as too slow (they resumed from where they stopped).
    pub forced_closes: u64,
    /// Times a watcher was parked.
    pub parks: u64,
    /// Watchers that fell out of the window.
    pub expiries: u64,
    /// Latency percentiles in microseconds over every watcher: p50, p90, p99, p99.9, max.
    pub latency_micros: [u64; 5],
    /// The same percentiles over the watchers that never stall: what a stalled watcher
    /// costs the others. Equal to `latency_micros` when no watcher stalls.
    pub healthy_latency_micros: [u64; 5],
    /// CPU seconds used by the process (user + system).
    pub cpu_seconds: f64,
    /// Peak resident memory in bytes.
    pub peak_rss_bytes: u64,
    /// Window length at the end, in events.
    pub window_events: u64,
}

impl Report {
    /// Events per second.
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }

    /// Deliveries per second.
    pub fn deliveries_per_second(&self) -> f64 {
        self.deliveries as f64 / self.elapsed.as_secs_f64()
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        let percentiles = |[p50, p90, p99, p999, max]: [u64; 5]| {
            format!("{{\"p50\":{p50},\"p90\":{p90},\"p99\":{p99},\"p99_9\":{p999},\"max\":{max}}}")
        };
        format!(
            concat!(
                "{{\"events\":{},\"elapsed_seconds\":{:.3},\"events_per_second\":{:.0},",
                "\"deliveries\":{},\"expected_deliveries\":{},\"deliveries_per_second\":{:.0},",
                "\"forced_closes\":{},\"parks\":{},\"expiries\":{},",
                "\"latency_micros\":{},\"healthy_latency_micros\":{},",
                "\"cpu_seconds\":{:.2},\"peak_rss_bytes\":{},\"window_events\":{}}}"
            ),
            self.events,
            self.elapsed.as_secs_f64(),
            self.events_per_second(),
            self.deliveries,
            self.expected_deliveries,
            self.deliveries_per_second(),
            self.forced_closes,
            self.parks,
            self.expiries,
            percentiles(self.latency_micros),
            percentiles(self.healthy_latency_micros),
            self.cpu_seconds,
            self.peak_rss_bytes,
            self.window_events
        )
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [p50, p90, p99, p999, max] = self.latency_micros;
        writeln!(
            f,
            "events        {} in {:.2?} ({:.0}/s)",
            self.events,
            self.elapsed,
            self.events_per_second()
        )?;
        writeln!(
            f,
            "deliveries    {} of {} expected ({:.0}/s)",
            self.deliveries,
            self.expected_deliveries,
            self.deliveries_per_second()
        )?;
        writeln!(f, "latency (µs)  p50 {p50}  p90 {p90}  p99 {p99}  p99.9 {p999}  max {max}")?;
        if self.healthy_latency_micros != self.latency_micros {
            let [p50, p90, p99, p999, max] = self.healthy_latency_micros;
            writeln!(f, "  healthy     p50 {p50}  p90 {p90}  p99 {p99}  p99.9 {p999}  max {max}")?;
        }
        writeln!(
            f,
            "slow watchers {} forced closes, {} parks, {} expiries",
            self.forced_closes, self.parks, self.expiries
        )?;
        writeln!(f, "window        {} events", self.window_events)?;
        write!(f, "process       {:.2} CPU s, peak RSS {} MiB", self.cpu_seconds, self.peak_rss_bytes >> 20)
    }
}

/// Per-watcher outcome.
struct Consumed {
    deliveries: u64,
    latency: Histogram<u64>,
    expiries: u64,
    stalls: bool,
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
    let cacher: Cacher<Payload> = builder.build();
    let start = Instant::now();
    let indexed = (config.watchers as f64 * config.indexed_share).round() as u64;
    let slow = (config.watchers as f64 * config.slow_share).round() as u64;

    let watchers: Vec<_> = (0..config.watchers)
        .map(|index| {
            let node = (index < indexed).then(|| format!("node-{}", index % config.trigger_cardinality));
            let stalls = index >= config.watchers - slow;
            spawn_watcher(&cacher, node, stalls.then_some((config.stall_ms, config.stall_every_ms)), start)
        })
        .collect();

    let per_node: Arc<Vec<AtomicU64>> =
        Arc::new((0..config.trigger_cardinality).map(|_| AtomicU64::new(0)).collect());
    let duration = Duration::from_secs_f64(config.duration);
    let producers: Vec<_> = (0..config.producers)
        .map(|id| {
            let producer = cacher.producer();
            let per_node = per_node.clone();
            let config = config.clone();
            std::thread::spawn(move || {
                let interval = (config.rate > 0)
                    .then(|| Duration::from_secs_f64(config.producers as f64 / config.rate as f64));
                let mut sent = 0u64;
                loop {
                    let intended = match interval {
                        Some(interval) => interval * sent as u32,
                        None => start.elapsed(),
                    };
                    if intended >= duration {
                        return sent;
                    }
                    if let Some(wait) = intended.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                    let key = sent % config.keys;
                    let node = (key * 31 + id) % config.trigger_cardinality;
                    let payload = Payload {
                        node: format!("node-{node}"),
                        intended_nanos: intended.as_nanos() as u64,
                        _bytes: vec![0; config.object_size].into_boxed_slice(),
                    };
                    if producer.put(format!("obj/{id}/{key}"), payload).is_err() {
                        return sent;
                    }
                    per_node[node as usize].fetch_add(1, Ordering::Relaxed);
                    sent += 1;
                }
            })
        })
        .collect();

    while start.elapsed() < duration {
        progress(start.elapsed().as_secs_f64() / duration.as_secs_f64());
        std::thread::sleep(Duration::from_secs(1).min(duration.saturating_sub(start.elapsed())));
    }
    progress(1.0);
    let events: u64 = producers.into_iter().map(|producer| producer.join().expect("producer thread")).sum();
    let elapsed = start.elapsed();
    let stats = cacher.stats();
    cacher.shutdown();

    let mut latencies = Latencies::new();
    let (mut deliveries, mut expiries) = (0, 0);
    let mut expected_deliveries = 0;
    for (index, watcher) in watchers.into_iter().enumerate() {
        let consumed = watcher.join().expect("watcher thread");
        deliveries += consumed.deliveries;
        expiries += consumed.expiries;
        latencies.add(&consumed);
        expected_deliveries += if (index as u64) < indexed {
            per_node[index % config.trigger_cardinality as usize].load(Ordering::Relaxed)
        } else {
            events
        };
    }
    let stats_after = cacher.stats();
    let (cpu_seconds, peak_rss_bytes) = process_usage();
    Report {
        events,
        elapsed,
        deliveries,
        expected_deliveries,
        forced_closes: stats_after.terminations,
        parks: stats_after.parks,
        expiries,
        latency_micros: percentiles(&latencies.all),
        healthy_latency_micros: percentiles(&latencies.healthy),
        cpu_seconds,
        peak_rss_bytes,
        window_events: stats.window_len,
    }
}

/// Latency over every watcher, and over the watchers that never stall.
struct Latencies {
    all: Histogram<u64>,
    healthy: Histogram<u64>,
}

impl Latencies {
    fn new() -> Self {
        let all = Histogram::new(3).expect("a valid histogram");
        Self { healthy: all.clone(), all }
    }

    fn add(&mut self, consumed: &Consumed) {
        self.all.add(&consumed.latency).expect("histograms of one shape");
        if !consumed.stalls {
            self.healthy.add(&consumed.latency).expect("histograms of one shape");
        }
    }
}

/// p50, p90, p99, p99.9 and max of `latency`.
fn percentiles(latency: &Histogram<u64>) -> [u64; 5] {
    [50.0, 90.0, 99.0, 99.9, 100.0].map(|quantile| latency.value_at_quantile(quantile / 100.0))
}

/// A watcher on its own thread, re-watching from the resume point after `TooSlow` or
/// from the oldest revision after `Expired`, until shutdown.
fn spawn_watcher(
    cacher: &Cacher<Payload>,
    node: Option<String>,
    stall: Option<(u64, u64)>,
    start: Instant,
) -> std::thread::JoinHandle<Consumed> {
    let cacher = cacher.clone();
    let options = move |from: Start| {
        let options = WatchOptions::new().start(from);
        match &node {
            Some(node) => options.trigger(node.clone()),
            None => options,
        }
    };
    let mut watch = cacher.watch(options(Start::Now)).expect("the cacher is ready");
    std::thread::spawn(move || {
        let mut consumed = Consumed {
            deliveries: 0,
            latency: Histogram::new(3).expect("a valid histogram"),
            expiries: 0,
            stalls: stall.is_some(),
        };
        let mut last_stall = Instant::now();
        loop {
            if let Some((stall_ms, every_ms)) = stall {
                if last_stall.elapsed() >= Duration::from_millis(every_ms) {
                    std::thread::sleep(Duration::from_millis(stall_ms));
                    last_stall = Instant::now();
                }
            }
            let resume = match watch.recv_timeout(Duration::from_millis(100)) {
                Err(RecvTimeoutError::Timeout) => continue,
                Ok(event) => {
                    if let Some(payload) = event.object() {
                        let now = start.elapsed().as_nanos() as u64;
                        let micros = now.saturating_sub(payload.intended_nanos) / 1000;
                        consumed.latency.record(micros).expect("an auto-resizing histogram takes any value");
                        consumed.deliveries += 1;
                    }
                    continue;
                }
                Err(RecvTimeoutError::Ended(WatchError::TooSlow { resume_from })) => resume_from,
                Err(RecvTimeoutError::Ended(WatchError::Expired { oldest, .. })) => {
                    consumed.expiries += 1;
                    oldest
                }
                Err(_) => return consumed,
            };
            match cacher.watch(options(Start::Revision(resume))) {
                Ok(next) => watch = next,
                Err(_) => return consumed,
            }
        }
    })
}

/// CPU seconds (user + system) and peak RSS of this process, from `/proc`; zeros where
/// `/proc` is not available.
fn process_usage() -> (f64, u64) {
    let cpu = std::fs::read_to_string("/proc/self/stat").ok().and_then(|stat| {
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(ticks as f64 / 100.0)
    });
    let rss = std::fs::read_to_string("/proc/self/status").ok().and_then(|status| {
        let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
        Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
    });
    (cpu.unwrap_or(0.0), rss.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumed(latency_micros: u64, stalls: bool) -> Consumed {
        let mut latency = Histogram::new(3).expect("a valid histogram");
        latency.record(latency_micros).expect("an auto-resizing histogram takes any value");
        Consumed { deliveries: 1, latency, expiries: 0, stalls }
    }

    #[test]
    fn stalling_watchers_count_in_all_latency_but_not_in_healthy() {
        let mut latencies = Latencies::new();
        latencies.add(&consumed(10, false));
        latencies.add(&consumed(5_000, true));
        assert_eq!(percentiles(&latencies.healthy), [10; 5]);
        let all = percentiles(&latencies.all);
        assert_eq!(all[0], 10, "p50 of {{10, 5000}}");
        assert!(all[4] >= 5_000, "max includes the stalling watcher: {all:?}");
    }
}
