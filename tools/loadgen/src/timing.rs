//! What both runs share: the open-loop producer schedule, and what each watcher measured.

use crate::config::Config;
use crate::report::histogram;
use crate::usage::Usage;
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What one watcher saw.
pub(crate) struct Consumed {
    pub(crate) deliveries: u64,
    /// From the publish call (`put`, or the `PUT` request) to delivery.
    pub(crate) latency: Histogram<u64>,
    /// From the intended send time to delivery.
    pub(crate) intended_latency: Histogram<u64>,
    pub(crate) expiries: u64,
    pub(crate) stalls: bool,
}

impl Consumed {
    pub(crate) fn new(stalls: bool) -> Self {
        Self { deliveries: 0, latency: histogram(), intended_latency: histogram(), expiries: 0, stalls }
    }

    /// Records one delivery now of a change meant to go at `intended_nanos` and sent at
    /// `sent_nanos` (both after `start`).
    pub(crate) fn record(&mut self, intended_nanos: u64, sent_nanos: u64, start: Instant) {
        let now = nanos(start.elapsed());
        let micros = |since: u64| now.saturating_sub(since) / 1000;
        self.latency.record(micros(sent_nanos)).expect("an auto-resizing histogram takes any value");
        self.intended_latency
            .record(micros(intended_nanos))
            .expect("an auto-resizing histogram takes any value");
        self.deliveries += 1;
    }
}

pub(crate) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// One change a producer publishes: which of its keys, the key's trigger value, and when.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Change {
    pub(crate) key: u64,
    pub(crate) node: u64,
    /// When the schedule meant it to go, nanoseconds after the run's start.
    pub(crate) intended_nanos: u64,
    /// When it was handed to the publish call.
    pub(crate) sent_nanos: u64,
}

/// What one producer sent.
pub(crate) struct Sent {
    pub(crate) events: u64,
    pub(crate) lag: Histogram<u64>,
    /// The producer thread's own CPU time (pacing, building payloads, publishing).
    pub(crate) cpu: Duration,
}

/// When event `index` of a producer is due, `interval_nanos` apart: in 64-bit
/// nanoseconds (584 years), so no send count wraps it.
fn scheduled(interval_nanos: u64, index: u64) -> Duration {
    Duration::from_nanos(interval_nanos.saturating_mul(index))
}

/// The trigger value of producer `id`'s key `key`: fixed per key, so every watcher's
/// expected deliveries are known exactly.
pub(crate) fn node_of(config: &Config, id: u64, key: u64) -> u64 {
    (key * 31 + id) % config.trigger_cardinality
}

/// Publishes on its schedule until `duration` has passed: sleeps until the next event
/// is due, then sends every event that is due (so an oversleep is a burst, not a drift).
/// `publish` returns false when the target has gone away.
pub(crate) fn produce(
    config: &Config,
    id: u64,
    start: Instant,
    per_node: &[AtomicU64],
    mut publish: impl FnMut(Change) -> bool,
) -> Sent {
    let duration = Duration::from_secs_f64(config.duration);
    let interval_nanos = (config.rate > 0).then(|| config.producers * 1_000_000_000 / config.rate);
    let mut sent = Sent { events: 0, lag: histogram(), cpu: Duration::ZERO };
    loop {
        let intended = match interval_nanos {
            Some(interval) => scheduled(interval, sent.events),
            None => start.elapsed(),
        };
        if intended >= duration {
            break;
        }
        if let Some(wait) = intended.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        let key = sent.events % config.keys;
        let node = node_of(config, id, key);
        let sent_at = start.elapsed();
        let change = Change { key, node, intended_nanos: nanos(intended), sent_nanos: nanos(sent_at) };
        if !publish(change) {
            break;
        }
        let lag = sent_at.saturating_sub(intended);
        sent.lag.record(nanos(lag) / 1000).expect("an auto-resizing histogram takes any value");
        per_node[node as usize].fetch_add(1, Ordering::Relaxed);
        sent.events += 1;
    }
    sent.cpu = Usage::this_thread().cpu;
    sent
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
