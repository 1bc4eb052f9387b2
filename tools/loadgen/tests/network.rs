//! The load generator over the network, against a real server on loopback: every
//! expected delivery arrives through the mio client, as JSON lines or protobuf frames,
//! and the server encodes each event once per form however many watch connections
//! receive it.
use clap::Parser;
use watchcache_loadgen::{run_network, Config, Resource};
use watchcache_server::{Server, Settings};

#[test]
fn every_pod_delivery_arrives_over_http_and_each_event_is_encoded_once() {
    every_delivery_arrives_and_each_event_is_encoded_once(Resource::Pods);
}

/// Config maps select by label rather than by the pod's indexed field.
#[test]
fn every_config_map_delivery_arrives_over_http_and_each_event_is_encoded_once() {
    every_delivery_arrives_and_each_event_is_encoded_once(Resource::Configmaps);
}

/// Over protobuf frames, where the server serves protobuf (built with its `protobuf`
/// feature, as `cargo xtask test` builds it): each event is encoded once to JSON (when
/// written) and once to protobuf (when first sent), however many connections read it.
/// Without the feature the server refuses the watches, and the run says so.
#[test]
fn every_delivery_arrives_over_protobuf_frames_and_each_event_is_encoded_once_per_form() {
    let (_runtime, target, stop) = serve();
    let config = small_run(&target, &["--wire", "protobuf", "--resource", "configmaps"]);
    let served = ureq::get(&format!("{target}/openapi/v2"))
        .set("accept", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
        .call()
        .is_ok();
    match run_network(&config, &target, |_| {}) {
        Ok(report) => {
            assert!(served, "protobuf watches of a server that serves no protobuf");
            assert!(report.events > 0);
            assert_eq!(report.deliveries, report.expected_deliveries, "no loss over protobuf");
            let server = report.server.expect("the server's figures");
            assert_eq!((server.encodes, server.protobuf_encodes), (report.events, report.events));
        }
        Err(error) => {
            assert!(!served, "{error}");
            assert!(error.contains("406"), "{error}");
        }
    }
    let _ = stop.send(());
}

fn every_delivery_arrives_and_each_event_is_encoded_once(resource: Resource) {
    let (_runtime, target, stop) = serve();
    let pid = std::process::id().to_string();
    let config = small_run(&target, &["--server-pid", &pid, "--resource", resource.plural()]);
    assert_eq!(config.resource, resource);
    let report = run_network(&config, &target, |_| {}).expect("the run reaches the server");
    assert!(report.events > 0);
    // 3 of the 6 connections select one node each; the other 3 see every event.
    assert_eq!(report.expected_deliveries, report.events * 3 + report.events);
    assert_eq!(report.deliveries, report.expected_deliveries, "no loss over the network");
    assert_eq!(report.loss(), None);
    let server = report.server.expect("the server's figures");
    assert_eq!(server.encodes, report.events, "one encode per event");
    assert_eq!(server.deliveries, report.deliveries, "what the server wrote is what arrived");
    assert!(server.cpu_seconds.is_some_and(|cpu| cpu > 0.0), "the process's CPU time is read from /proc");
    let _ = stop.send(());
}

#[test]
fn an_unreachable_target_is_an_error_not_a_hang() {
    let config = Config::parse_from(["loadgen", "--target", "http://127.0.0.1:1", "--duration", "0.1"]);
    let error = run_network(&config, "http://127.0.0.1:1", |_| {}).expect_err("nothing listens on port 1");
    assert!(error.contains("cannot create"), "{error}");
}

/// A server on loopback, on its own runtime: the runtime, the target URL, and what stops it.
fn serve() -> (tokio::runtime::Runtime, String, tokio::sync::oneshot::Sender<()>) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (address, stop) = runtime.block_on(async {
        let server = Server::new(Settings::default()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.serve(listener, async move {
            let _ = stopped.await;
        }));
        (address, stop)
    });
    (runtime, format!("http://{address}"), stop)
}

/// Half a second at 1,000 writes/s against `target`, 6 connections of which 3 select one
/// node of 3, and `flags`.
fn small_run(target: &str, flags: &[&str]) -> Config {
    let common = ["--target", target, "--connections", "6", "--trigger-cardinality", "3", "--keys", "20"];
    let pace = ["--duration", "0.5", "--rate", "1000"];
    Config::parse_from(["loadgen"].iter().chain(&common).chain(&pace).chain(flags))
}
