//! client-go, the client of Kubernetes' own components, against the server: a typed
//! clientset (creates, gets, updates, conflicts, not-found, a pod), a shared informer with
//! its lister, and a watch from a list's revision; with JSON, and (the `protobuf`
//! feature) with protobuf bodies. The program is `client-go/main.go`,
//! built from Debian's Kubernetes 1.20 source (whose `vendor/` holds client-go) with
//! Debian's Go: `$GO` and `$KUBERNETES_GOPATH`, which `cargo xtask test` provisions.

mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams};
use kube::{Client, Config};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use support::etcd::Etcd;
use support::Running;
use watchcache_server::{Settings, StorageSettings};

/// What `client-go-check` prints when every answer was as kube-apiserver's.
#[derive(Debug, PartialEq, Eq, Deserialize)]
struct Report {
    listed: Vec<String>,
    handled: BTreeMap<String, u32>,
    watched: String,
    containers: Vec<String>,
}

fn variable(name: &str) -> PathBuf {
    std::env::var_os(name)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{name} is not set: run the tests with `cargo xtask test`"))
}

/// Builds `client-go/main.go` inside the Kubernetes tree (GOPATH mode, so that the
/// tree's `vendor/` provides client-go), once per test process.
fn client_go_check() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let gopath = variable("KUBERNETES_GOPATH");
        let package = gopath.join("src/k8s.io/kubernetes/cmd/watchcache-client-go-check");
        std::fs::create_dir_all(&package).expect("the package directory");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/client-go/main.go");
        std::fs::copy(&source, package.join("main.go")).expect("copy the program into the tree");
        let binary = Path::new(env!("CARGO_TARGET_TMPDIR")).join("client-go-check");
        let output = std::process::Command::new(variable("GO"))
            .current_dir(gopath.join("src/k8s.io/kubernetes"))
            .args(["build", "-o"])
            .arg(&binary)
            .arg("./cmd/watchcache-client-go-check")
            .env("GO111MODULE", "off")
            .env("GOPATH", &gopath)
            .env("GOFLAGS", "")
            .env("GOCACHE", gopath.join("build-cache"))
            .output()
            .expect("run go build");
        assert!(output.status.success(), "go build: {}", String::from_utf8_lossy(&output.stderr));
        binary
    })
}

/// Runs the check against `server` in `namespace`, sending and preferring `content_type`.
async fn run_check(server: &Running, namespace: &str, content_type: &str) -> Report {
    let binary = tokio::task::spawn_blocking(client_go_check).await.expect("the build");
    let output = tokio::process::Command::new(binary)
        .args(["--server", &server.url(), "--namespace", namespace, "--content-type", content_type])
        .kill_on_drop(true)
        .output()
        .await
        .expect("run client-go-check");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("a report")
}

fn expected() -> Report {
    Report {
        listed: ["a=2", "b0=2", "b2=1", "b3=1", "b4=1"].map(String::from).to_vec(),
        handled: BTreeMap::from([("add".into(), 5), ("update".into(), 1), ("delete".into(), 1)]),
        watched: "ADDED w".into(),
        containers: ["web=nginx:1.25", "sidecar=busybox"].map(String::from).to_vec(),
    }
}

/// name=value of the configmaps client-go wrote, as kube-rs reads them back.
async fn written(server: &Running, namespace: &str) -> Vec<String> {
    let client = Client::try_from(Config::new(server.url().parse().expect("a url"))).expect("a client");
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let listed = maps.list(&ListParams::default().labels("app=client-go-check")).await.expect("a list");
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    assert!(pods.get_opt("p").await.expect("a get").is_none(), "client-go deleted its pod");
    listed
        .items
        .iter()
        .map(|map| {
            let value = map.data.as_ref().and_then(|data| data.get("value")).cloned().unwrap_or_default();
            format!("{}={value}", map.metadata.name.as_deref().unwrap_or_default())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_go_with_json_in_memory() {
    let server = Running::start(Settings::default()).await;
    assert_eq!(run_check(&server, "default", "application/json").await, expected());
    assert_eq!(written(&server, "default").await, ["a=2", "b0=2", "b2=1", "b3=1", "b4=1", "w=1"]);
    // Again in another namespace: nothing of the first run is seen.
    assert_eq!(run_check(&server, "kube-public", "application/json").await, expected());
    server.stop().await;
}

/// As Kubernetes' components configure client-go: protobuf bodies, protobuf preferred in
/// answers, which the server answers in (objects, lists, the informer's watch).
#[cfg(feature = "protobuf")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_go_with_protobuf_in_memory() {
    let server = Running::start(Settings::default()).await;
    assert_eq!(run_check(&server, "default", "application/vnd.kubernetes.protobuf").await, expected());
    assert_eq!(written(&server, "default").await, ["a=2", "b0=2", "b2=1", "b3=1", "b4=1", "w=1"]);
    let client = Client::try_from(Config::new(server.url().parse().expect("a url"))).expect("a client");
    let metrics = client.request_text(http::Request::get("/metrics").body(Vec::new()).unwrap());
    let metrics = metrics.await.expect("the metrics");
    let encodes = metrics
        .lines()
        .find_map(|line| line.strip_prefix(r#"watchcache_protobuf_encodes_total{resource="configmaps"} "#))
        .and_then(|count| count.parse::<u64>().ok());
    assert!(encodes.is_some_and(|count| count > 0), "answered in protobuf: {encodes:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_go_with_json_on_etcd() {
    let etcd = Etcd::start(1);
    let settings = Settings {
        storage: StorageSettings::Etcd { servers: etcd.endpoints(), prefix: "/registry".into() },
        ..Settings::default()
    };
    let server = Running::start(settings).await;
    assert_eq!(run_check(&server, "default", "application/json").await, expected());
    let output = etcd.etcdctl(&["get", "/registry/configmaps/default/", "--prefix", "--keys-only"]);
    let keys: Vec<_> =
        String::from_utf8_lossy(&output.stdout).split_whitespace().map(str::to_owned).collect();
    let names = ["a", "b0", "b2", "b3", "b4", "w"];
    assert_eq!(keys, names.map(|name| format!("/registry/configmaps/default/{name}")), "what etcd holds");
    server.stop().await;
}
