//! `/metrics` in the Prometheus text format.
//!
//! The server's own counters (encodes, deliveries, open watches) are kept as requests
//! run; each cacher's figures (events, parks, terminations, window, revision) are read
//! from its [`watchcache::Stats`] at scrape time.

use crate::object::Object;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex, PoisonError};
use watchcache::Cacher;

/// Each resource's cacher, read at scrape time.
type Cachers = Arc<Mutex<Vec<(ResourceLabel, Cacher<Object>)>>>;

/// One figure read from a cacher's stats: name, help, how to read it.
type StatFigure<V> = (&'static str, &'static str, fn(&watchcache::Stats) -> V);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResourceLabel {
    resource: String,
}

impl ResourceLabel {
    pub(crate) fn new(resource: &str) -> Self {
        Self { resource: resource.to_owned() }
    }
}

/// One resource's series (handles to the registered metrics).
#[derive(Debug, Clone)]
pub(crate) struct ResourceMetrics {
    /// Objects encoded to JSON: once per write, however many watchers receive it.
    pub(crate) encodes: Counter,
    /// Objects encoded to protobuf: once per object a protobuf client reads, however many
    /// read it.
    #[cfg(feature = "protobuf")]
    pub(crate) protobuf_encodes: Counter,
    /// Events written to watch responses.
    pub(crate) deliveries: Counter,
    pub(crate) watches_open: Gauge,
    /// Lists of the resource from its storage into its cacher (on etcd: one at start, one
    /// after each watch etcd compacted away).
    pub(crate) relists: Counter,
}

/// The server's metrics and their registry.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    encodes: Family<ResourceLabel, Counter>,
    #[cfg(feature = "protobuf")]
    protobuf_encodes: Family<ResourceLabel, Counter>,
    deliveries: Family<ResourceLabel, Counter>,
    watches_open: Family<ResourceLabel, Gauge>,
    relists: Family<ResourceLabel, Counter>,
    cachers: Cachers,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("watchcache");
        let encodes = Family::<ResourceLabel, Counter>::default();
        let deliveries = Family::<ResourceLabel, Counter>::default();
        let watches_open = Family::<ResourceLabel, Gauge>::default();
        let relists = Family::<ResourceLabel, Counter>::default();
        registry.register(
            "encodes",
            "Objects encoded to JSON (once per write, not per watcher)",
            encodes.clone(),
        );
        #[cfg(feature = "protobuf")]
        let protobuf_encodes = Family::<ResourceLabel, Counter>::default();
        #[cfg(feature = "protobuf")]
        registry.register(
            "protobuf_encodes",
            "Objects encoded to protobuf (once per object a protobuf client reads, not per watcher)",
            protobuf_encodes.clone(),
        );
        registry.register("deliveries", "Events written to watch responses", deliveries.clone());
        registry.register("watches_open", "Watch responses open", watches_open.clone());
        registry.register(
            "relists",
            "Lists from the storage into the cacher (on etcd: at start, and after a compacted watch)",
            relists.clone(),
        );
        let cachers = Arc::new(Mutex::new(Vec::new()));
        registry.register_collector(Box::new(CacherStats { cachers: cachers.clone() }));
        Self {
            registry,
            encodes,
            #[cfg(feature = "protobuf")]
            protobuf_encodes,
            deliveries,
            watches_open,
            relists,
            cachers,
        }
    }

    /// Creates `plural`'s series (present from the start, at zero) and hands back their
    /// handles, so requests count without a label lookup; `cacher`'s stats are read at
    /// scrape time.
    pub(crate) fn register_resource(&self, plural: &str, cacher: &Cacher<Object>) -> ResourceMetrics {
        let label = ResourceLabel::new(plural);
        let handles = ResourceMetrics {
            encodes: self.encodes.get_or_create(&label).clone(),
            #[cfg(feature = "protobuf")]
            protobuf_encodes: self.protobuf_encodes.get_or_create(&label).clone(),
            deliveries: self.deliveries.get_or_create(&label).clone(),
            watches_open: self.watches_open.get_or_create(&label).clone(),
            relists: self.relists.get_or_create(&label).clone(),
        };
        self.cachers.lock().unwrap_or_else(PoisonError::into_inner).push((label, cacher.clone()));
        handles
    }

    /// The text exposition.
    pub(crate) fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a `String` cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Reads each cacher's stats at scrape time.
#[derive(Debug)]
struct CacherStats {
    cachers: Cachers,
}

impl Collector for CacherStats {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let cachers = self.cachers.lock().unwrap_or_else(PoisonError::into_inner);
        let stats: Vec<_> = cachers.iter().map(|(label, cacher)| (label, cacher.stats())).collect();
        let counters: [StatFigure<u64>; 3] = [
            ("events", "Changes applied (each one revision)", |stats| stats.revision),
            ("parks", "Watchers taken out of live dispatch for a full buffer", |stats| stats.parks),
            ("terminations", "Watchers ended for being too slow", |stats| stats.terminations),
        ];
        for (name, help, read) in counters {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (label, stats) in &stats {
                ConstCounter::new(read(stats)).encode(family.encode_family(*label)?)?;
            }
        }
        let gauges: [StatFigure<i64>; 5] = [
            ("revision", "The latest applied revision", |stats| clamp(stats.revision)),
            ("window_len", "Events the replay window holds", |stats| clamp(stats.window_len)),
            ("window_bytes", "What the replay window's objects weigh, in bytes", |stats| {
                clamp(stats.window_bytes as u64)
            }),
            ("objects", "Objects in the current state", |stats| clamp(stats.objects as u64)),
            ("watchers_parked", "Watchers catching up from the window", |stats| {
                clamp(stats.watchers_parked as u64)
            }),
        ];
        for (name, help, read) in gauges {
            let mut family =
                encoder.encode_descriptor(name, help, None, prometheus_client::metrics::MetricType::Gauge)?;
            for (label, stats) in &stats {
                ConstGauge::new(read(stats)).encode(family.encode_family(*label)?)?;
            }
        }
        Ok(())
    }
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
