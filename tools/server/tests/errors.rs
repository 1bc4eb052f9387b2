//! Bad input, over HTTP: each request gets the Kubernetes `Status` with the right code and
//! reason, and nothing else changes. Plus the limits: watches, body size, a client that
//! stops reading, and a graceful stop on SIGTERM.

mod support;

use kube::client::Body;
use kube::{Client, Config};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::Running;
use watchcache_server::Settings;

const MAPS: &str = "/api/v1/namespaces/default/configmaps";

/// A failsafe for reads from the server: a hang fails the test instead of blocking CI.
const HANG: Duration = Duration::from_secs(60);

struct Raw(Client);

impl Raw {
    fn new(server: &Running) -> Self {
        Self(Client::try_from(Config::new(server.url().parse().unwrap())).unwrap())
    }

    /// Sends a request; returns the status code, the `Retry-After` header and the body.
    async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, Option<String>, Value) {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap();
        let response = self.0.send(request).await.expect("a response");
        let code = response.status().as_u16();
        let retry_after =
            response.headers().get("retry-after").map(|value| value.to_str().unwrap().to_owned());
        let bytes = response.into_body().collect_bytes().await.expect("a body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (code, retry_after, body)
    }

    async fn json(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let (code, _, body) =
            self.send(method, path, "application/json", body.to_string().into_bytes()).await;
        (code, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (code, _, body) = self.send("GET", path, "application/json", Vec::new()).await;
        (code, body)
    }
}

fn map(name: &str, value: &str) -> Value {
    json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": name }, "data": { "value": value } })
}

/// A configmap with one label, as a body.
fn labelled(key: &str, value: &str) -> Vec<u8> {
    let mut map = map("labelled", "x");
    map["metadata"]["labels"] = json!({ key: value });
    map.to_string().into_bytes()
}

/// A bad request: method, path, content type, body; the code and reason it must get.
type Case = (&'static str, String, &'static str, Vec<u8>, u16, &'static str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_a_status_and_change_nothing() {
    let server = Running::start(Settings { max_body_bytes: 4096, ..Settings::default() }).await;
    let raw = Raw::new(&server);
    assert_eq!(raw.json("POST", MAPS, &map("keep", "1")).await.0, 201);
    let (code, kept) = raw.json("PUT", &format!("{MAPS}/keep"), &map("keep", "2")).await;
    assert_eq!(code, 200);
    let stale = "1";
    let before = raw.get(MAPS).await.1;

    let too_big = map("big", &"x".repeat(8192)).to_string().into_bytes();
    let stale_replace =
        json!({ "kind": "ConfigMap", "metadata": { "name": "keep", "resourceVersion": stale } });
    let stale_delete = json!({ "preconditions": { "resourceVersion": stale } });
    let cases: Vec<Case> = vec![
        ("GET", format!("{MAPS}?labelSelector=app%20in%20x"), "", vec![], 400, "BadRequest"),
        ("GET", format!("{MAPS}?fieldSelector=status.phase%3DRunning"), "", vec![], 400, "BadRequest"),
        ("GET", format!("{MAPS}?resourceVersion=abc"), "", vec![], 400, "BadRequest"),
        (
            "GET",
            format!("{MAPS}?resourceVersion=1&resourceVersionMatch=Sometimes"),
            "",
            vec![],
            400,
            "BadRequest",
        ),
        ("GET", format!("{MAPS}?limit=-1"), "", vec![], 400, "BadRequest"),
        ("GET", format!("{MAPS}?limit=1&continue=bm90LWEtdG9rZW4"), "", vec![], 400, "BadRequest"),
        // `watch=maybe` is a watch (Kubernetes reads anything but false or 0 as true).
        ("GET", format!("{MAPS}?watch=maybe&timeoutSeconds=soon"), "", vec![], 400, "BadRequest"),
        ("GET", "/api/v1/namespaces/default/widgets".into(), "", vec![], 404, "NotFound"),
        ("GET", "/api/v1/namespaces/Not_A_Namespace/configmaps".into(), "", vec![], 400, "BadRequest"),
        ("GET", format!("{MAPS}/missing"), "", vec![], 404, "NotFound"),
        ("POST", MAPS.into(), "application/json", b"{not json".to_vec(), 400, "BadRequest"),
        (
            "POST",
            MAPS.into(),
            "application/json",
            br#"{"kind":"Pod","metadata":{"name":"p"}}"#.to_vec(),
            400,
            "BadRequest",
        ),
        (
            "POST",
            MAPS.into(),
            "application/json",
            map("Bad_Name", "x").to_string().into_bytes(),
            422,
            "Invalid",
        ),
        (
            "POST",
            MAPS.into(),
            "application/json",
            map("keep", "other").to_string().into_bytes(),
            409,
            "AlreadyExists",
        ),
        ("POST", MAPS.into(), "application/json", too_big, 413, "RequestEntityTooLarge"),
        // Kubernetes decodes a configmap's `data` as strings.
        (
            "POST",
            MAPS.into(),
            "application/json",
            br#"{"metadata":{"name":"numbers"},"data":{"k":1}}"#.to_vec(),
            400,
            "BadRequest",
        ),
        // A browser sends `text/plain` without a CORS preflight: never a write.
        (
            "POST",
            MAPS.into(),
            "text/plain",
            map("plain", "x").to_string().into_bytes(),
            415,
            "UnsupportedMediaType",
        ),
        ("POST", MAPS.into(), "application/yaml", b"metadata: [unclosed".to_vec(), 400, "BadRequest"),
        (
            "POST",
            format!("{MAPS}?dryRun=Some"),
            "application/json",
            map("d", "x").to_string().into_bytes(),
            400,
            "BadRequest",
        ),
        ("DELETE", format!("{MAPS}/keep?dryRun=true"), "", vec![], 400, "BadRequest"),
        ("POST", MAPS.into(), "application/json", map("a..b", "x").to_string().into_bytes(), 422, "Invalid"),
        (
            "POST",
            format!("/api/v1/namespaces/{}/configmaps", "n".repeat(64)),
            "application/json",
            map("n", "x").to_string().into_bytes(),
            400,
            "BadRequest",
        ),
        ("POST", MAPS.into(), "application/json", labelled("with space", "x"), 422, "Invalid"),
        ("POST", MAPS.into(), "application/json", labelled("app", &"v".repeat(64)), 422, "Invalid"),
        ("GET", format!("{MAPS}/%FF"), "", vec![], 400, "BadRequest"),
        (
            "PUT",
            format!("{MAPS}/keep"),
            "application/json",
            stale_replace.to_string().into_bytes(),
            409,
            "Conflict",
        ),
        (
            "PUT",
            format!("{MAPS}/keep"),
            "application/json",
            map("other", "x").to_string().into_bytes(),
            400,
            "BadRequest",
        ),
        (
            "PUT",
            format!("{MAPS}/missing"),
            "application/json",
            map("missing", "x").to_string().into_bytes(),
            404,
            "NotFound",
        ),
        (
            "PATCH",
            format!("{MAPS}/keep"),
            "application/apply-patch+yaml",
            b"{}".to_vec(),
            415,
            "UnsupportedMediaType",
        ),
        (
            "PATCH",
            format!("{MAPS}/keep"),
            "application/json-patch+json",
            br#"[{"op":"remove","path":"/data/absent"}]"#.to_vec(),
            422,
            "Invalid",
        ),
        (
            "PATCH",
            format!("{MAPS}/keep"),
            "application/merge-patch+json",
            b"{nope".to_vec(),
            400,
            "BadRequest",
        ),
        ("DELETE", format!("{MAPS}/missing"), "", vec![], 404, "NotFound"),
        (
            "DELETE",
            format!("{MAPS}/keep"),
            "application/json",
            stale_delete.to_string().into_bytes(),
            409,
            "Conflict",
        ),
    ];
    for (method, path, content_type, body, code, reason) in cases {
        let (got, _, status) = raw.send(method, &path, content_type, body).await;
        assert_eq!(got, code, "{method} {path}: {status}");
        assert_eq!(status["kind"], "Status", "{method} {path}");
        assert_eq!(status["reason"], reason, "{method} {path}: {status}");
        assert_eq!(status["code"], code, "{method} {path}");
        let message = status["message"].as_str().unwrap();
        assert!(!message.is_empty() && message.starts_with(|c: char| !c.is_uppercase()), "{message}");
    }
    let after = raw.get(MAPS).await.1;
    assert_eq!(after, before, "no bad request changed anything, not even the revision");
    assert_eq!(after["items"][0]["data"]["value"], "2");
    assert_eq!(after["items"][0]["metadata"]["resourceVersion"], kept["metadata"]["resourceVersion"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_name_the_resource_as_kube_apiserver_does() {
    let server = Running::start(Settings::default()).await;
    let raw = Raw::new(&server);
    let (_, missing) = raw.get(&format!("{MAPS}/missing")).await;
    assert_eq!(missing["details"], json!({ "name": "missing", "kind": "configmaps" }), "{missing}");
    assert_eq!(missing["message"], r#"configmaps "missing" not found"#);
    raw.json("POST", MAPS, &map("twice", "x")).await;
    let (_, twice) = raw.json("POST", MAPS, &map("twice", "x")).await;
    assert_eq!(
        (twice["reason"].as_str(), twice["details"]["kind"].as_str()),
        (Some("AlreadyExists"), Some("configmaps"))
    );
    // An invalid object is named by its kind, each refused field a cause.
    let (code, invalid) = raw.json("POST", MAPS, &map("Bad_Name", "x")).await;
    assert_eq!((code, invalid["details"]["kind"].as_str()), (422, Some("ConfigMap")), "{invalid}");
    assert_eq!(invalid["details"]["causes"][0]["field"], "metadata.name", "{invalid}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_is_in_the_first_accepted_form_the_server_serves_else_406() {
    let server = Running::start(Settings::default()).await;
    let raw = Raw::new(&server);
    raw.json("POST", MAPS, &map("shown", "x")).await;
    let mut cases = vec![
        ("application/json;as=Table;v=v2;g=meta.k8s.io", MAPS.to_owned(), 406, "Status"),
        (
            "application/json;as=Table;v=v1;g=meta.k8s.io;q=0, application/json",
            MAPS.to_owned(),
            200,
            "ConfigMapList",
        ),
        ("*/*", MAPS.to_owned(), 200, "ConfigMapList"),
        ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json", MAPS.to_owned(), 200, "Table"),
        (support::TABLE, format!("{MAPS}/shown"), 200, "Table"),
        // A table of what does not exist, or with a bad option, is the same refusal.
        (support::TABLE, format!("{MAPS}/absent"), 404, "Status"),
        (support::TABLE, "/api/v1/namespaces/default/widgets".into(), 404, "Status"),
        (support::TABLE, format!("{MAPS}?includeObject=All"), 400, "Status"),
    ];
    // A build without protobuf serves none (with it, see `resources.rs`).
    if cfg!(not(feature = "protobuf")) {
        cases.push(("application/vnd.kubernetes.protobuf", MAPS.to_owned(), 406, "Status"));
        cases.push((
            "application/vnd.kubernetes.protobuf, application/json",
            MAPS.to_owned(),
            200,
            "ConfigMapList",
        ));
    }
    for (accept, path, code, kind) in cases {
        let request =
            http::Request::builder().uri(&path).header("accept", accept).body(Body::empty()).unwrap();
        let response = raw.0.send(request).await.expect("a response");
        assert_eq!(response.status().as_u16(), code, "{accept} {path}");
        let body: Value =
            serde_json::from_slice(&response.into_body().collect_bytes().await.unwrap()).unwrap();
        assert_eq!(body["kind"], kind, "{accept} {path}: {body}");
        if code == 406 {
            assert_eq!(body["reason"], "NotAcceptable", "{accept}: {body}");
        }
        if kind == "Table" {
            assert_eq!(support::table_columns(&body), ["Name", "Data", "Age"], "{body}");
            assert_eq!(
                body["rows"][0]["cells"].as_array().unwrap()[..2],
                [json!("shown"), json!(1)],
                "{body}"
            );
            assert_eq!(body["rows"][0]["object"]["kind"], "PartialObjectMetadata", "{body}");
            assert_eq!(body["rows"][0]["object"]["metadata"]["name"], "shown", "{body}");
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_older_than_the_window_are_410_and_tokens_too() {
    let server = Running::start(Settings { window: Some(4), ..Settings::default() }).await;
    let raw = Raw::new(&server);
    for at in 0..3 {
        raw.json("POST", MAPS, &map(&format!("m{at}"), "v")).await;
    }
    let (code, page) = raw.get(&format!("{MAPS}?limit=1")).await;
    assert_eq!(code, 200);
    let token = page["metadata"]["continue"].as_str().expect("a continue token").to_owned();
    let exact = raw.get(&format!("{MAPS}?resourceVersion=2&resourceVersionMatch=Exact")).await;
    assert_eq!((exact.0, exact.1["items"].as_array().unwrap().len()), (200, 2), "within the window");
    for at in 0..10 {
        raw.json("PUT", &format!("{MAPS}/m0"), &map("m0", &at.to_string())).await;
    }
    for path in [
        format!("{MAPS}?resourceVersion=2&resourceVersionMatch=Exact"),
        format!("{MAPS}?limit=1&continue={token}"),
    ] {
        let (code, status) = raw.get(&path).await;
        assert_eq!((code, status["reason"].as_str()), (410, Some("Expired")), "{path}: {status}");
    }
    server.stop().await;
}

/// A 256 KiB config map replaced 40 times is 10 MiB of history; under a 1 MiB bound the
/// window holds at most 1 MiB of it, by the server's own figure, and what it let go is
/// 410 while the recent past still replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_keeps_its_byte_bound_however_large_the_objects() {
    let server = Running::start(Settings { window_bytes: 1 << 20, ..Settings::default() }).await;
    let raw = Raw::new(&server);
    let large = "x".repeat(256 << 10);
    let (code, _) = raw.json("POST", MAPS, &map("large", &large)).await;
    assert_eq!(code, 201);
    let mut revisions = Vec::new();
    for at in 0..40 {
        let (code, replaced) =
            raw.json("PUT", &format!("{MAPS}/large"), &map("large", &format!("{at}{large}"))).await;
        assert_eq!(code, 200, "{replaced}");
        revisions.push(replaced["metadata"]["resourceVersion"].as_str().unwrap().to_owned());
    }
    let metrics = raw.0.request_text(http::Request::get("/metrics").body(Vec::new()).unwrap()).await.unwrap();
    let held: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix(r#"watchcache_window_bytes{resource="configmaps"} "#))
        .and_then(|value| value.parse().ok())
        .expect("the window's weight on /metrics");
    assert!((256 << 10..=1 << 20).contains(&held), "the window weighs {held} bytes");
    let exact = |revision: &str| format!("{MAPS}?resourceVersion={revision}&resourceVersionMatch=Exact");
    let (code, status) = raw.get(&exact(&revisions[0])).await;
    assert_eq!((code, status["reason"].as_str()), (410, Some("Expired")), "{status}");
    let (code, list) = raw.get(&exact(&revisions[38])).await;
    assert_eq!(code, 200, "{list}");
    assert!(list["items"][0]["data"]["value"].as_str().unwrap().starts_with("38x"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_over_the_limit_get_429_with_retry_after() {
    let server = Running::start(Settings { max_watches: 1, ..Settings::default() }).await;
    let address = server.address.to_string();
    // Raw connections: kube's client retries a 429 by itself, which is what a 429 is for.
    let (open, refused) = tokio::task::spawn_blocking(move || {
        let open = request_watch(&address);
        assert!(open.head.starts_with("HTTP/1.1 200"), "{}", open.head);
        let mut refused = request_watch(&address);
        let mut body = String::new();
        refused.reader.read_to_string(&mut body).unwrap();
        (open, (refused.head, body))
    })
    .await
    .unwrap();
    let (head, body) = refused;
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");
    assert!(head.to_lowercase().contains("retry-after: 1\r\n"), "{head}");
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["reason"], "TooManyRequests");
    drop(open);
    server.stop().await;
}

/// A watch request on a raw connection (closed after the response): the response head,
/// and a reader at the start of the body.
struct RawWatch {
    head: String,
    reader: BufReader<TcpStream>,
}

fn request_watch(address: &str) -> RawWatch {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(HANG)).unwrap();
    write!(stream, "GET {MAPS}?watch=true HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        assert!(reader.read_line(&mut head).unwrap() > 0, "the connection closed in the head: {head}");
    }
    RawWatch { head, reader }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected() {
    let settings = Settings { write_timeout: Duration::from_millis(200), ..Settings::default() };
    let server = Running::start(settings).await;
    let raw = Raw::new(&server);
    let mut stalled = request_watch(&server.address.to_string()).reader;
    // 30 MB of events, more than the loopback socket buffers hold, while it reads nothing.
    let payload = "x".repeat(100_000);
    for at in 0..300 {
        let (code, _) = raw.json("POST", MAPS, &map(&format!("big{at}"), &payload)).await;
        assert_eq!(code, 201, "the server goes on while one client is stalled");
    }
    // The server gave up on it: reading now ends (not with a clean chunked end) rather
    // than going on to the last event.
    let received = tokio::task::spawn_blocking(move || {
        let mut received = Vec::new();
        let _ = stalled.read_to_end(&mut received);
        received
    })
    .await
    .unwrap();
    assert!(!received.ends_with(b"0\r\n\r\n"), "the response was cut, not completed");
    assert!(received.len() < 300 * 100_000, "the stalled client did not get every event");
    server.stop().await;
}

#[test]
fn sigterm_ends_watches_cleanly_and_exits_zero() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_watchcache-server"))
        .args(["--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap());
    let address = loop {
        let mut line = String::new();
        assert!(log.read_line(&mut line).unwrap() > 0, "the server exited before serving");
        if let Some((_, address)) = line.split_once("address=") {
            break address.split_whitespace().next().unwrap().to_owned();
        }
    };
    let watch = request_watch(&address);
    assert!(watch.head.starts_with("HTTP/1.1 200"), "{}", watch.head);
    let mut watch = watch.reader;
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut rest = Vec::new();
    watch.read_to_end(&mut rest).unwrap();
    assert!(
        rest.ends_with(b"0\r\n\r\n"),
        "the watch ended with a clean chunked end: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(child.wait().unwrap().success(), "exit code 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yaml_body_is_the_object_its_json_would_be() {
    let server = Running::start(Settings::default()).await;
    let raw = Raw::new(&server);
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\n  labels: {app: web}\ndata:\n  value: \"1\"\n";
    let (code, _, created) = raw.send("POST", MAPS, "application/yaml", yaml.into()).await;
    assert_eq!(code, 201, "{created}");
    let (code, read) = raw.get(&format!("{MAPS}/from-yaml")).await;
    assert_eq!(code, 200);
    assert_eq!((&read["metadata"]["labels"]["app"], &read["data"]["value"]), (&json!("web"), &json!("1")));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_not_read_holds_a_chunk_of_its_events_not_all_of_them() {
    let server = Running::start(Settings::default()).await;
    let raw = Raw::new(&server);
    // 40 objects of 60 KiB: 2.4 MiB of initial events for a watch from "any" revision.
    let value = "x".repeat(60 * 1024);
    for at in 0..40 {
        assert_eq!(raw.json("POST", MAPS, &map(&format!("big-{at}"), &value)).await.0, 201);
    }
    let address = server.address;
    let chunks = tokio::task::spawn_blocking(move || {
        let stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(HANG)).unwrap();
        (&stream)
            .write_all(
                format!("GET {MAPS}?watch=true&resourceVersion=0 HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        while line != "\r\n" {
            line.clear();
            reader.read_line(&mut line).unwrap();
        }
        // The sizes of the first chunks, as the server wrote them (chunked encoding).
        (0..4)
            .map(|_| {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let size = usize::from_str_radix(line.trim(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                reader.read_exact(&mut chunk).unwrap();
                size
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    // A chunk is at most 256 KiB, and never less than one line: what a client that
    // stops reading leaves in its connection, however large the snapshot.
    for size in &chunks {
        assert!(*size > 60 * 1024 && *size <= 256 * 1024, "{chunks:?}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_are_refused_warned_or_kept_as_field_validation_says_and_openapi_says_so() {
    let server = Running::start(Settings::default()).await;
    let raw = Raw::new(&server);
    let send = |query: &str, name: &str| {
        let body = json!({ "metadata": { "name": name }, "data": { "k": "v" }, "bogus": { "deep": 1 } });
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("{MAPS}{query}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string().into_bytes()))
            .unwrap();
        let client = raw.0.clone();
        async move {
            let response = client.send(request).await.expect("a response");
            let warnings: Vec<String> = response
                .headers()
                .get_all("warning")
                .iter()
                .map(|value| value.to_str().unwrap().to_owned())
                .collect();
            (response.status().as_u16(), warnings)
        }
    };
    let (code, _) = send("?fieldValidation=Strict", "strict").await;
    assert_eq!(code, 400);
    assert_eq!(
        send("?fieldValidation=Warn", "warned").await,
        (201, vec![r#"299 - "unknown field \"bogus\"""#.to_owned()])
    );
    assert_eq!(send("", "by-default").await.1.len(), 1, "Warn is the default");
    assert_eq!(send("?fieldValidation=Ignore", "ignored").await, (201, Vec::new()));
    assert_eq!(send("?fieldValidation=Loose", "bad").await.0, 400);
    let (_, listed) = raw.get(MAPS).await;
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["by-default", "ignored", "warned"], "nothing refused was stored");

    // What kubectl reads to send `fieldValidation`, and `kubectl explain` to find a kind.
    let (_, index) = raw.get("/openapi/v3").await;
    let url = index["paths"]["api/v1"]["serverRelativeURL"].as_str().expect("the core document");
    let (code, document) = raw.get(url).await;
    assert_eq!(code, 200);
    let patch = &document["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({ "group": "", "version": "v1", "kind": "ConfigMap" })
    );
    assert!(patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|parameter| parameter["name"] == "fieldValidation"));
    let schema = &document["components"]["schemas"]["io.k8s.api.core.v1.ConfigMap"];
    assert_eq!(schema["x-kubernetes-group-version-kind"][0]["kind"], "ConfigMap");
    assert_eq!(schema["properties"]["data"]["additionalProperties"]["type"], "string");
    assert!(document["paths"].get("/api/v1/namespaces").is_some(), "namespaces are cluster-scoped");
    assert_eq!(raw.get("/openapi/v3/apis/example.com/v1").await.0, 404);
    server.stop().await;
}
