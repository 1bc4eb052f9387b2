//! What to run: the flags, parsed by clap, echoed in the JSON report.

use clap::{Parser, ValueEnum};
use serde::Serialize;

/// The slow-watcher policy, as a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Park slow watchers; they catch up from the window.
    Park,
    /// Terminate slow watchers after the dispatch budget.
    Terminate,
}

/// What consumes the watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Consumers {
    /// One OS thread per watcher.
    Threads,
    /// One task per watcher on a two-worker tokio runtime, as a server consumes.
    Tasks,
}

/// How a watcher takes its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Receive {
    /// Every ready event per wake-up, borrowed (`Watch::visit`).
    Batch,
    /// One owned event per call (`Watch::recv` / the `Stream`).
    One,
}

/// What to run. Every flag has a default; with none the run takes about 10 s.
#[derive(Debug, Clone, Parser, Serialize)]
#[command(name = "watchcache-loadgen", about = "Drive an embedded watchcache and report what it delivered")]
pub struct Config {
    /// Producer threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub producers: u64,
    /// Watchers.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub watchers: u64,
    /// What consumes the watches.
    #[arg(long, value_enum, default_value_t = Consumers::Threads)]
    pub consumers: Consumers,
    /// How a watcher takes its events.
    #[arg(long, value_enum, default_value_t = Receive::Batch)]
    pub receive: Receive,
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
    /// The cacher's batch window in microseconds (`CacherBuilder::batch_window`): how
    /// long a burst of changes waits to be applied as one batch. 0 applies at once.
    #[arg(long, default_value_t = 0)]
    pub batch_window_micros: u64,
    /// Print the report as JSON (with this configuration in it).
    #[arg(long)]
    #[serde(skip)]
    pub json: bool,
    /// Run against a server over HTTP instead of an embedded cacher, e.g.
    /// http://127.0.0.1:8080 (`watchcache-server`, or kube-apiserver's plain-HTTP
    /// port): producers replace objects with PUT, and one thread holds every watch
    /// connection with mio.
    #[arg(long)]
    pub target: Option<String>,
    /// With --target: what the producers write.
    #[arg(long, value_enum, default_value_t = Resource::Pods, requires = "target")]
    pub resource: Resource,
    /// With --target: the form the watches ask for (`Accept`).
    #[arg(long, value_enum, default_value_t = Wire::Json, requires = "target")]
    pub wire: Wire,
    /// With --target: how many watch connections (default: --watchers).
    #[arg(long, requires = "target")]
    pub connections: Option<u64>,
    /// With --target: the server's process id, to report its CPU time per million
    /// deliveries (read from /proc). Repeat it to count several processes together,
    /// such as the server and its etcd.
    #[arg(long, requires = "target")]
    pub server_pid: Vec<u32>,
}

/// The form of a watch stream over the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Wire {
    /// JSON lines.
    Json,
    /// Kubernetes' protobuf (`application/vnd.kubernetes.protobuf`): length-prefixed
    /// `WatchEvent` frames, for the built-in kinds of a server that serves them.
    Protobuf,
}

/// The kind of object a run over the network writes and watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    /// Pods on `node-N` (`spec.nodeName`); selective watches use a field selector,
    /// which `watchcache-server` serves from its trigger index. kube-apiserver refuses
    /// these pods (they have no containers).
    Pods,
    /// Config maps labelled `loadgen/node=node-N`; selective watches use a label
    /// selector. Any Kubernetes API server accepts them.
    Configmaps,
}

impl Resource {
    /// The resource's name in paths and metric labels.
    pub fn plural(self) -> &'static str {
        match self {
            Self::Pods => "pods",
            Self::Configmaps => "configmaps",
        }
    }
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

impl Config {
    /// How many watchers are indexed (the first ones) and how many stall (the last ones).
    pub(crate) fn split(&self) -> (u64, u64) {
        let watchers = self.connections.unwrap_or(self.watchers);
        let indexed = (watchers as f64 * self.indexed_share).round() as u64;
        let slow = (watchers as f64 * self.slow_share).round() as u64;
        (indexed, slow)
    }
}
