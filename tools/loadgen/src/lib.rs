//! The watchcache load generator: producers publish at a target rate (open loop) into an
//! embedded cacher while watchers — indexed by a trigger value or unindexed, some of them
//! stalling, on threads or tasks — consume; the report gives throughput, latency
//! percentiles (the cacher's, from each `put`, and from each event's intended send time,
//! coordinated omission corrected), the generator's own send lag, forced closes, parks,
//! CPU time per million deliveries and peak memory.

mod config;
mod embedded;
mod network;
mod report;
mod timing;
mod usage;
mod wire;

pub use config::{Config, Consumers, Policy, Receive, Resource, Wire};
pub use embedded::run;
pub use network::run_network;
pub use report::{spectrum, Percentiles, Quantile, Report, RingFigures, ServerFigures};
