//! A server safe to expose: TLS and bearer tokens that kube-rs and kubectl reach through
//! a kubeconfig, the refusal to serve other machines without them, loopback `Host` names
//! only on loopback, requests in flight and their time limit, and connections that send
//! nothing.
//!
//! kubectl is `$KUBECTL` if set, else `kubectl` on the `PATH`.

mod support;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::{Running, ServerProcess};
use watchcache_server::{Server, ServerError, Settings, TlsFiles};

const MAPS: &str = "/api/v1/namespaces/default/configmaps";

/// A failsafe for reads from the server: a hang fails the test instead of blocking CI.
const HANG: Duration = Duration::from_secs(60);

const TOKEN: &str = "31ada4fd-adec-460c-809a-9e56ceb75269";

/// A CA, a serving certificate it signed for `localhost` and `127.0.0.1`, and a token
/// file, in a fresh directory.
struct Credentials {
    dir: tempfile::TempDir,
    ca_pem: String,
}

impl Credentials {
    fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        std::fs::write(dir.path().join("tls.crt"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("tokens.csv"), format!("{TOKEN},admin,uid-1,\"system:masters\"\n"))
            .unwrap();
        Self { dir, ca_pem: ca.pem() }
    }

    fn settings(&self) -> Settings {
        Settings {
            tls: Some(TlsFiles { cert: self.path("tls.crt"), key: self.path("tls.key") }),
            token_auth_file: Some(self.path("tokens.csv")),
            ..Settings::default()
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A kubeconfig for `server` holding the CA and `token`; returns its path.
    fn kubeconfig(&self, server: &Running, name: &str, token: &str) -> PathBuf {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let path = self.path(name);
        let config = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
             clusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\n\
             users:\n- name: test\n  user:\n    token: {token}\n\
             contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: default\n",
            server.url()
        );
        std::fs::write(&path, config).unwrap();
        path
    }
}

async fn client_of(kubeconfig: &Path) -> kube::Client {
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn map(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({ "metadata": { "name": name }, "data": { "k": "v" } })).unwrap()
}

fn kubectl(home: &Path, kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    let program = std::env::var_os("KUBECTL").unwrap_or_else(|| "kubectl".into());
    Command::new(&program).env("HOME", home).env("KUBECONFIG", kubeconfig).args(args).output().unwrap_or_else(
        |error| panic!("cannot run {program:?} ({error}): set KUBECTL or put kubectl on the PATH"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_and_kubectl_reach_tls_with_a_token_and_nothing_else_does() {
    let credentials = Credentials::new();
    let server = Running::start(credentials.settings()).await;
    assert!(server.url().starts_with("https://"));

    let admin = credentials.kubeconfig(&server, "admin.kubeconfig", TOKEN);
    let maps: Api<ConfigMap> = Api::default_namespaced(client_of(&admin).await);
    maps.create(&PostParams::default(), &map("over-tls"))
        .await
        .expect("kube-rs creates over TLS with the token");

    let home = credentials.path("home");
    let listed = kubectl(&home, &admin, &["get", "configmaps", "-o", "name"]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "configmap/over-tls");

    let guessed = credentials.kubeconfig(&server, "guessed.kubeconfig", "not-the-token");
    let refused =
        Api::<ConfigMap>::default_namespaced(client_of(&guessed).await).list(&Default::default()).await;
    match refused {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"), "{status:?}");
        }
        other => panic!("a wrong token is 401, not {other:?}"),
    }
    let refused = kubectl(&home, &guessed, &["get", "configmaps"]);
    assert!(!refused.status.success());
    // kubectl's words for a 401, then the Status message.
    assert!(String::from_utf8_lossy(&refused.stderr).contains("must be logged in"), "{refused:?}");

    // Plain HTTP on the TLS port gets no API answer.
    let mut plain = TcpStream::connect(server.address).unwrap();
    plain.set_read_timeout(Some(HANG)).unwrap();
    // The TLS side may refuse the bytes and close before the write ends: a broken pipe is
    // a refusal too, so only what comes back is judged.
    let _ = write!(plain, "GET {MAPS} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_token_is_401_as_a_status() {
    let credentials = Credentials::new();
    let server = Running::start(Settings { tls: None, ..credentials.settings() }).await;
    let (head, body) = raw_request(server.address, ("GET", MAPS), &[], "");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status["kind"].as_str(), status["reason"].as_str()), (Some("Status"), Some("Unauthorized")));
    let bearer = format!("Bearer {TOKEN}");
    let (head, _) = raw_request(server.address, ("GET", MAPS), &[("Authorization", &bearer)], "");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_other_machines_needs_tls_and_tokens_or_explicit_consent() {
    let credentials = Credentials::new();
    let exposed = |settings: Settings| async move {
        let server = Server::new(settings).await.unwrap();
        let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
        // Serves until the signal: a server that starts answers `Ok` once stopped.
        server.serve(listener, async {}).await
    };
    let half = Settings { token_auth_file: None, ..credentials.settings() };
    for refused in [Settings::default(), half] {
        let error = exposed(refused).await.expect_err("no serving beyond loopback unguarded");
        assert!(matches!(error, ServerError::Exposed { .. }), "{error}");
        assert!(error.to_string().contains("--insecure-allow-unauthenticated"), "{error}");
    }
    exposed(credentials.settings()).await.expect("TLS and tokens may serve other machines");
    exposed(Settings { allow_unauthenticated: true, ..Settings::default() })
        .await
        .expect("the operator may consent to serving unguarded");

    let output = Command::new(env!("CARGO_BIN_EXE_watchcache-server"))
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("serves other machines"), "{output:?}");
}

/// Sends one request on a new connection (closed after it); the response head and body.
fn raw_request(
    address: SocketAddr,
    (method, path): (&str, &str),
    headers: &[(&str, &str)],
    body: &str,
) -> (String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(HANG)).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        request += &format!("Host: {address}\r\n");
    }
    if !body.is_empty() {
        request += &format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len());
    }
    for (name, value) in headers {
        request += &format!("{name}: {value}\r\n");
    }
    stream.write_all(format!("{request}\r\n{body}").as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_or_too_large_headers_are_431() {
    let server = Running::start(Settings::default()).await;
    // Past the 256 KiB bound, whatever the steps the head is read in (up to twice it).
    let large = "v".repeat(1024 * 1024);
    let (head, _) = raw_request(server.address, ("GET", MAPS), &[("X-Large", &large)], "");
    assert!(head.starts_with("HTTP/1.1 431"), "{}", &head[..head.len().min(200)]);
    let many: Vec<(String, String)> = (0..150).map(|at| (format!("X-Header-{at}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    let (head, _) = raw_request(server.address, ("GET", MAPS), &many, "");
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    let (head, _) = raw_request(server.address, ("GET", MAPS), &many[..50], "");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_loopback_only_loopback_host_names_are_served() {
    let server = Running::start(Settings::default()).await;
    let (head, body) = raw_request(server.address, ("GET", MAPS), &[("Host", "rebound.example:8080")], "");
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert!(body.contains("\"reason\":\"Forbidden\""), "{body}");
    let port = server.address.port();
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), "[::1]".into()] {
        let (head, _) = raw_request(server.address, ("GET", MAPS), &[("Host", &host)], "");
        assert!(head.starts_with("HTTP/1.1 200"), "{host}: {head}");
    }
    server.stop().await;
}

/// Starts a create whose body the server has asked for (`Expect: 100-continue`), so the
/// request is in flight, holding its slot, until `finish` sends the body.
struct HeldWrite {
    stream: TcpStream,
    body: String,
}

impl HeldWrite {
    fn start(server: &Running, name: &str) -> Self {
        let body = serde_json::json!({ "metadata": { "name": name } }).to_string();
        let mut stream = TcpStream::connect(server.address).unwrap();
        stream.set_read_timeout(Some(HANG)).unwrap();
        write!(
            stream,
            "POST {MAPS} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Expect: 100-continue\r\nConnection: close\r\n\r\n",
            server.address,
            body.len()
        )
        .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut continued = String::new();
        reader.read_line(&mut continued).unwrap();
        assert!(continued.starts_with("HTTP/1.1 100"), "{continued}");
        Self { stream, body }
    }

    /// Sends the body; the response's status line.
    fn finish(mut self) -> String {
        self.stream.write_all(self.body.as_bytes()).unwrap();
        let mut response = String::new();
        self.stream.read_to_string(&mut response).unwrap();
        response
            .lines()
            .find(|line| line.starts_with("HTTP/1.1 2") || line.starts_with("HTTP/1.1 4"))
            .unwrap_or("")
            .to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_beyond_the_inflight_limit_get_429_and_reads_go_on() {
    let settings = Settings { max_mutating_requests_inflight: 1, ..Settings::default() };
    let server = Running::start(settings).await;
    let (server, status) = tokio::task::spawn_blocking(move || {
        let held = HeldWrite::start(&server, "held");
        let body = r#"{"metadata":{"name":"refused"}}"#;
        let refused = raw_request(server.address, ("POST", MAPS), &[], body);
        let (read, _) = raw_request(server.address, ("GET", MAPS), &[], "");
        assert!(read.starts_with("HTTP/1.1 200"), "reads have their own slots: {read}");
        let created = held.finish();
        assert!(created.starts_with("HTTP/1.1 201"), "{created}");
        (server, refused)
    })
    .await
    .unwrap();
    let (head, body) = status;
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");
    assert!(head.to_lowercase().contains("retry-after: 1\r\n"), "{head}");
    assert!(body.contains("\"reason\":\"TooManyRequests\""), "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_time_limit_is_504_and_a_watch_has_none() {
    // A zero limit times out any request that has to wait at all; a list at a revision
    // the server has not reached waits for it.
    let server = Running::start(Settings { request_timeout: Duration::ZERO, ..Settings::default() }).await;
    let (head, body) =
        raw_request(server.address, ("GET", &format!("{MAPS}?resourceVersion=1000000")), &[], "");
    assert!(head.starts_with("HTTP/1.1 504"), "{head}");
    assert!(body.contains("\"reason\":\"Timeout\""), "{body}");
    let mut watch = TcpStream::connect(server.address).unwrap();
    watch.set_read_timeout(Some(HANG)).unwrap();
    write!(
        watch,
        "GET {MAPS}?watch=true&timeoutSeconds=18446744073709551615 HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )
    .unwrap();
    let mut status = String::new();
    BufReader::new(&watch).read_line(&mut status).unwrap();
    assert!(
        status.starts_with("HTTP/1.1 200"),
        "a watch outlives the limit, even with a huge timeoutSeconds: {status}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_send_nothing_neither_stop_others_nor_stay() {
    let settings = Settings { header_read_timeout: Duration::from_millis(300), ..Settings::default() };
    let server = Running::start(settings).await;
    let server = tokio::task::spawn_blocking(move || {
        // Slowloris: a started request whose headers never end, and a connection that
        // never sends a byte.
        let mut held: Vec<TcpStream> = (0..200)
            .map(|at| {
                let mut stream = TcpStream::connect(server.address).unwrap();
                if at % 2 == 0 {
                    write!(stream, "GET {MAPS} HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").unwrap();
                }
                stream
            })
            .collect();
        for _ in 0..10 {
            let (head, _) = raw_request(server.address, ("GET", MAPS), &[], "");
            assert!(head.starts_with("HTTP/1.1 200"), "served while 200 connections hang: {head}");
        }
        for stream in &mut held {
            stream.set_read_timeout(Some(HANG)).unwrap();
            let mut rest = Vec::new();
            // Closed by the server: the read ends (with a 408 at most, or a reset) instead
            // of waiting out the failsafe.
            match stream.read_to_end(&mut rest) {
                Ok(_) => assert!(!rest.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&rest)),
                Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}"),
            }
        }
        server
    })
    .await
    .unwrap();
    server.stop().await;
}

#[test]
fn no_token_or_object_data_reaches_the_log_or_the_metrics() {
    let credentials = Credentials::new();
    let tokens = credentials.path("tokens.csv");
    // Every log line the server has, from its own and its libraries' modules.
    let server = ServerProcess::start_logging(&["--token-auth-file", tokens.to_str().unwrap()], "trace");
    let address: SocketAddr = server.address.parse().unwrap();
    let bearer = format!("Bearer {TOKEN}");
    let secret_body =
        r#"{"metadata":{"name":"classified","labels":{"level":"top"}},"data":{"key":"s3cr3t-data"}}"#;
    let (created, _) = raw_request(address, ("POST", MAPS), &[("Authorization", &bearer)], secret_body);
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let (refused, _) = raw_request(address, ("GET", MAPS), &[("Authorization", "Bearer guessed-a1b2c3")], "");
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let (head, metrics) = raw_request(address, ("GET", "/metrics"), &[("Authorization", &bearer)], "");
    assert!(head.starts_with("HTTP/1.1 200") && metrics.contains("watchcache_"), "{head}");
    for object_data in ["classified", "s3cr3t-data", "level", "top"] {
        assert!(!metrics.contains(object_data), "/metrics shows {object_data:?}");
    }
    let log = server.kill_and_log();
    assert!(log.contains("TRACE"), "tracing was on: {log}");
    for secret in [TOKEN, "guessed-a1b2c3", "s3cr3t-data"] {
        assert!(!log.contains(secret), "the log holds {secret:?}");
    }
}
