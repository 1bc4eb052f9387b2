//! The load generator's library entry point on a tiny configuration: its numbers must be
//! consistent (every expected delivery made, nothing lost), under each policy.
use clap::Parser;
use watchcache_loadgen::{run, Config};

fn tiny(extra: &[&str]) -> Config {
    let base =
        ["loadgen", "--duration", "0.3", "--rate", "2000", "--watchers", "6", "--trigger-cardinality", "3"];
    Config::parse_from(base.iter().chain(extra))
}

#[test]
fn deliveries_match_events_times_matching_watchers() {
    let config = tiny(&[]);
    let report = run(&config, |_| {});
    assert!(report.events > 0);
    // 3 of the 6 watchers are indexed, one per trigger value; the other 3 see everything.
    assert_eq!(report.expected_deliveries, report.events * 3 + report.events);
    assert_eq!(report.deliveries, report.expected_deliveries, "no loss");
    assert!(report.latency_micros.windows(2).all(|pair| pair[0] <= pair[1]), "percentiles are ordered");
    assert_eq!(report.healthy_latency_micros, report.latency_micros, "no watcher stalls");
    assert!(report.to_json().contains(&format!("\"deliveries\":{}", report.deliveries)));
}

#[test]
fn stalled_watchers_under_terminate_resume_without_loss() {
    let config =
        tiny(&["--policy", "terminate", "--slow-share", "0.5", "--stall-ms", "50", "--stall-every-ms", "60"]);
    let report = run(&config, |_| {});
    assert_eq!(report.deliveries, report.expected_deliveries, "resumed watchers lose nothing");
    assert!(report.to_json().contains("\"healthy_latency_micros\":{\"p50\":"));
}

#[test]
fn bad_flags_are_errors_not_panics() {
    let error = Config::try_parse_from(["loadgen", "--slow-share", "2"]).unwrap_err();
    assert_eq!(error.exit_code(), 2);
    assert!(error.to_string().contains("2 is not between 0 and 1"));
}
