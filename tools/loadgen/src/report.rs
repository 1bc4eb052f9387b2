//! What a run measured, as text and as JSON.

use crate::config::Config;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p99_9: u64,
    /// The largest value recorded.
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of `histogram`.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let at = |quantile: f64| histogram.value_at_quantile(quantile);
        Self { p50: at(0.5), p90: at(0.9), p99: at(0.99), p99_9: at(0.999), max: histogram.max() }
    }

    /// In order, smallest first.
    pub fn as_array(&self) -> [u64; 5] {
        [self.p50, self.p90, self.p99, self.p99_9, self.max]
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { p50, p90, p99, p99_9, max } = self;
        write!(f, "p50 {p50}  p90 {p90}  p99 {p99}  p99.9 {p99_9}  max {max}")
    }
}

/// One point of a latency distribution: the latency, in microseconds, at or under which
/// `quantile` of the deliveries fell.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quantile {
    /// The share of deliveries, 0 to 1.
    pub quantile: f64,
    /// Their latency bound in microseconds.
    pub micros: u64,
}

/// The distribution of `histogram` as HdrHistogram plots it: the quantiles 1 − 2⁻ᵏ for k
/// from 0 to 17 (0, ½, ¾, … 99.9992%), then the maximum, so that the tail gets as many
/// points as the body.
pub fn spectrum(histogram: &Histogram<u64>) -> Vec<Quantile> {
    let mut points: Vec<Quantile> = (0..=17)
        .map(|halvings| 1.0 - 0.5f64.powi(halvings))
        .map(|quantile| Quantile { quantile, micros: histogram.value_at_quantile(quantile) })
        .collect();
    points.push(Quantile { quantile: 1.0, micros: histogram.max() });
    points
}

/// Latency histograms over every watcher and over the watchers that never stall.
#[derive(Debug, Clone)]
pub(crate) struct Latencies {
    pub(crate) all: Histogram<u64>,
    pub(crate) healthy: Histogram<u64>,
}

impl Latencies {
    pub(crate) fn new() -> Self {
        let all = histogram();
        Self { healthy: all.clone(), all }
    }

    /// Adds one watcher's latencies; `stalls` says whether it is one of the stalling ones.
    pub(crate) fn add(&mut self, latency: &Histogram<u64>, stalls: bool) {
        self.all.add(latency).expect("histograms of one shape");
        if !stalls {
            self.healthy.add(latency).expect("histograms of one shape");
        }
    }
}

/// An empty histogram of microseconds, resizing to any value.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("a valid histogram")
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What ran.
    pub config: Config,
    /// Events published (and applied).
    pub events: u64,
    /// How long producers published.
    #[serde(rename = "elapsed_seconds", serialize_with = "seconds")]
    pub elapsed: Duration,
    /// Events delivered to watchers.
    pub deliveries: u64,
    /// Deliveries the events' trigger values call for.
    pub expected_deliveries: u64,
    /// Watchers terminated as too slow (they resumed from where they stopped).
    pub forced_closes: u64,
    /// Times a watcher was parked.
    pub parks: u64,
    /// Watchers that fell out of the window (they resumed from the oldest revision, so
    /// the events in between are not delivered).
    pub expiries: u64,
    /// The cacher's latency over every watcher, from the moment a producer called `put`
    /// to delivery: the generator's own lateness (`send_lag_micros`) is not in it.
    pub latency_micros: Percentiles,
    /// The same over the watchers that never stall: what a stalled watcher costs the
    /// others. Equal to `latency_micros` when no watcher stalls.
    pub healthy_latency_micros: Percentiles,
    /// Latency from each event's intended send time (coordinated omission corrected):
    /// the cacher's latency plus the generator's lateness.
    pub intended_latency_micros: Percentiles,
    /// The same as a distribution, for plotting ([`spectrum`]).
    pub intended_latency_spectrum: Vec<Quantile>,
    /// How late producers sent each event against their schedule (sleep overshoot, or
    /// a ring that stayed full).
    pub send_lag_micros: Percentiles,
    /// CPU seconds used by the process (user + system) during the run.
    pub cpu_seconds: f64,
    /// Of which the producer threads used this many: pacing, building objects,
    /// publishing. The rest is the cacher and the consumers.
    pub producer_cpu_seconds: f64,
    /// Peak resident memory in bytes.
    pub peak_rss_bytes: u64,
    /// Window length at the end, in events.
    pub window_events: u64,
    /// The cacher's incoming ring, in a run of the library (over the network, the
    /// server does not report its ring).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring: Option<RingFigures>,
    /// The server's own figures, in a run over the network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerFigures>,
}

/// How full the cacher's incoming ring got: whether producers ever waited for the
/// dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RingFigures {
    /// The most changes the ring held at once, as the dispatcher found it at the start
    /// of a batch.
    pub high_water: usize,
    /// Its capacity: a high water equal to it means the ring filled, and producers
    /// publishing then waited.
    pub capacity: usize,
}

/// What the server did during a run over the network, from its `/metrics` (and its CPU
/// time from `/proc`, given its pid).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ServerFigures {
    /// Objects the server encoded to JSON.
    pub encodes: u64,
    /// Objects the server encoded to protobuf.
    pub protobuf_encodes: u64,
    /// Events the server wrote to watch responses.
    pub deliveries: u64,
    /// The CPU seconds of the processes given with `--server-pid`, if any.
    pub cpu_seconds: Option<f64>,
}

fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
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

    /// CPU seconds the process used per million deliveries.
    pub fn cpu_seconds_per_million_deliveries(&self) -> f64 {
        self.cpu_seconds / self.millions_of_deliveries()
    }

    /// The same without the producer threads: the cacher and the consumers.
    pub fn consumer_side_cpu_seconds_per_million_deliveries(&self) -> f64 {
        (self.cpu_seconds - self.producer_cpu_seconds).max(0.0) / self.millions_of_deliveries()
    }

    /// Objects the server encoded per event published: 1 when each event is encoded
    /// once, whatever the number of watchers.
    pub fn encodes_per_event(&self, server: &ServerFigures) -> f64 {
        server.encodes as f64 / self.events.max(1) as f64
    }

    /// Protobuf encodes per event.
    pub fn protobuf_encodes_per_event(&self, server: &ServerFigures) -> f64 {
        server.protobuf_encodes as f64 / self.events.max(1) as f64
    }

    fn millions_of_deliveries(&self) -> f64 {
        self.deliveries.max(1) as f64 / 1e6
    }

    /// What went wrong, if anything: a delivery lost or repeated with no expiry to
    /// explain it. A watcher that expired resumes from the oldest revision and misses
    /// what lies between, so with expiries the counts are not compared.
    pub fn loss(&self) -> Option<String> {
        if self.deliveries > self.expected_deliveries {
            return Some(format!(
                "{} deliveries, {} expected: events were delivered twice",
                self.deliveries, self.expected_deliveries
            ));
        }
        (self.deliveries < self.expected_deliveries && self.expiries == 0).then(|| {
            format!(
                "{} deliveries, {} expected: {} lost with no expiry to explain it",
                self.deliveries,
                self.expected_deliveries,
                self.expected_deliveries - self.deliveries
            )
        })
    }

    /// The report as one JSON object, with the configuration that produced it.
    pub fn to_json(&self) -> String {
        let mut value = serde_json::to_value(self).expect("a report serialises");
        let fields = value.as_object_mut().expect("a report is an object");
        fields.insert("events_per_second".into(), self.events_per_second().round().into());
        fields.insert("deliveries_per_second".into(), self.deliveries_per_second().round().into());
        fields.insert(
            "cpu_seconds_per_million_deliveries".into(),
            self.cpu_seconds_per_million_deliveries().into(),
        );
        fields.insert(
            "consumer_side_cpu_seconds_per_million_deliveries".into(),
            self.consumer_side_cpu_seconds_per_million_deliveries().into(),
        );
        if let Some(server) = &self.server {
            fields.insert("server_encodes_per_event".into(), self.encodes_per_event(server).into());
            fields.insert(
                "server_protobuf_encodes_per_event".into(),
                self.protobuf_encodes_per_event(server).into(),
            );
            if let Some(cpu) = server.cpu_seconds {
                fields.insert(
                    "server_cpu_seconds_per_million_deliveries".into(),
                    (cpu / self.millions_of_deliveries()).into(),
                );
            }
        }
        value.to_string()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
        writeln!(f, "latency (µs)  {}", self.latency_micros)?;
        if self.healthy_latency_micros != self.latency_micros {
            writeln!(f, "  healthy     {}", self.healthy_latency_micros)?;
        }
        writeln!(f, "  intended    {}", self.intended_latency_micros)?;
        writeln!(f, "send lag (µs) {}", self.send_lag_micros)?;
        writeln!(
            f,
            "slow watchers {} forced closes, {} parks, {} expiries",
            self.forced_closes, self.parks, self.expiries
        )?;
        writeln!(f, "window        {} events", self.window_events)?;
        if let Some(ring) = &self.ring {
            writeln!(f, "ring          high water {} of {} changes", ring.high_water, ring.capacity)?;
        }
        write!(
            f,
            "process       {:.2} CPU s ({:.2} per million deliveries; {:.2} without the producers), peak RSS {} MiB",
            self.cpu_seconds,
            self.cpu_seconds_per_million_deliveries(),
            self.consumer_side_cpu_seconds_per_million_deliveries(),
            self.peak_rss_bytes >> 20
        )?;
        if let Some(server) = &self.server {
            write!(
                f,
                "\nserver        {} encodes ({:.2} per event), {} protobuf ({:.2}), {} deliveries",
                server.encodes,
                self.encodes_per_event(server),
                server.protobuf_encodes,
                self.protobuf_encodes_per_event(server),
                server.deliveries
            )?;
            if let Some(cpu) = server.cpu_seconds {
                write!(
                    f,
                    ", {cpu:.2} CPU s ({:.2} per million deliveries)",
                    cpu / self.millions_of_deliveries()
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_value(latency_micros: u64) -> Histogram<u64> {
        let mut latency = histogram();
        latency.record(latency_micros).expect("an auto-resizing histogram takes any value");
        latency
    }

    #[test]
    fn stalling_watchers_count_in_all_latency_but_not_in_healthy() {
        let mut latencies = Latencies::new();
        latencies.add(&one_value(10), false);
        latencies.add(&one_value(5_000), true);
        assert_eq!(Percentiles::of(&latencies.healthy).as_array(), [10; 5]);
        let all = Percentiles::of(&latencies.all);
        assert_eq!(all.p50, 10, "p50 of {{10, 5000}}");
        assert!(all.max >= 5_000, "max includes the stalling watcher: {all:?}");
    }
}
