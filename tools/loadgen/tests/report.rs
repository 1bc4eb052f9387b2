//! The load generator's library entry point on tiny configurations: its numbers must be
//! consistent (every expected delivery made, nothing lost), under each policy, consumer
//! kind and receive mode; its JSON echoes what ran.
use clap::Parser;
use watchcache_loadgen::{run, Config, Report};

fn tiny(extra: &[&str]) -> Config {
    let base =
        ["loadgen", "--duration", "0.3", "--rate", "2000", "--watchers", "6", "--trigger-cardinality", "3"];
    Config::parse_from(base.iter().chain(extra))
}

fn assert_consistent(report: &Report) {
    assert!(report.events > 0);
    // 3 of the 6 watchers are indexed, one per trigger value; the other 3 see everything.
    assert_eq!(report.expected_deliveries, report.events * 3 + report.events);
    assert_eq!(report.deliveries, report.expected_deliveries, "no loss");
    assert_eq!(report.loss(), None);
    for percentiles in [report.latency_micros, report.intended_latency_micros, report.send_lag_micros] {
        assert!(percentiles.as_array().windows(2).all(|pair| pair[0] <= pair[1]), "ordered: {percentiles:?}");
    }
    assert!(
        report.intended_latency_micros.max >= report.latency_micros.max,
        "latency from the intended time includes the send lag"
    );
    let spectrum = &report.intended_latency_spectrum;
    assert!(spectrum
        .windows(2)
        .all(|pair| pair[0].quantile < pair[1].quantile && pair[0].micros <= pair[1].micros));
    let at =
        |quantile: f64| spectrum.iter().find(|point| point.quantile == quantile).map(|point| point.micros);
    assert_eq!(at(0.5), Some(report.intended_latency_micros.p50), "the spectrum agrees with the percentiles");
    assert_eq!(at(1.0), Some(report.intended_latency_micros.max));
}

#[test]
fn deliveries_match_events_times_matching_watchers_on_threads_one_by_one() {
    let report = run(&tiny(&["--receive", "one"]), |_| {});
    assert_consistent(&report);
    assert_eq!(report.healthy_latency_micros, report.latency_micros, "no watcher stalls");
}

#[test]
fn deliveries_match_on_tasks_in_batches() {
    let report = run(&tiny(&["--consumers", "tasks"]), |_| {});
    assert_consistent(&report);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["deliveries"], report.deliveries);
    assert_eq!(json["config"]["consumers"], "tasks", "the JSON echoes what ran");
    assert_eq!(json["config"]["receive"], "batch");
    assert!(json["cpu_seconds_per_million_deliveries"].as_f64().unwrap() > 0.0);
    let ring = report.ring.expect("a run of the library reports its ring");
    assert_eq!(json["ring"]["capacity"], ring.capacity);
    assert_eq!(
        ring.capacity,
        watchcache::Cacher::<u64>::builder().build().stats().incoming_capacity,
        "the default"
    );
    assert!(ring.high_water <= ring.capacity, "{ring:?}");
}

#[test]
fn stalled_watchers_under_terminate_resume_without_loss() {
    for consumers in ["threads", "tasks"] {
        let config = tiny(&[
            "--policy",
            "terminate",
            "--consumers",
            consumers,
            "--slow-share",
            "0.5",
            "--stall-ms",
            "50",
            "--stall-every-ms",
            "60",
        ]);
        let report = run(&config, |_| {});
        assert_eq!(
            report.deliveries, report.expected_deliveries,
            "resumed watchers lose nothing ({consumers})"
        );
    }
}

#[test]
fn a_shortfall_without_expiries_is_a_loss_and_a_surplus_always_is() {
    let mut report = run(&tiny(&[]), |_| {});
    report.deliveries -= 1;
    assert!(report.loss().unwrap().contains("1 lost with no expiry to explain it"));
    report.expiries = 1;
    assert_eq!(report.loss(), None, "an expired watcher skips events it was told about");
    report.deliveries += 2;
    assert!(report.loss().unwrap().contains("delivered twice"));
}

#[test]
fn bad_flags_are_errors_not_panics() {
    let error = Config::try_parse_from(["loadgen", "--slow-share", "2"]).unwrap_err();
    assert_eq!(error.exit_code(), 2);
    assert!(error.to_string().contains("2 is not between 0 and 1"));
}
