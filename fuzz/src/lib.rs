//! What the fuzz targets share: one in-memory `watchcache-server` behind its router, fed
//! requests without a socket, and the rules every answer must keep — a server error is a
//! bug, every refusal is a Kubernetes `Status` saying why in lowercase, and an object a
//! write stored reads back in protobuf and takes that answer back as a write.

use axum::body::Body;
use http::{Method, Request, StatusCode};
use std::sync::OnceLock;
use std::time::Duration;
use tower::ServiceExt;
use watchcache_server::{Server, Settings};

/// The collections requests are about; each starts with one object named [`SEEDED`] (the
/// pod with the lists a strategic merge patch merges).
pub const MAPS: &str = "/api/v1/namespaces/default/configmaps";
pub const PODS: &str = "/api/v1/namespaces/default/pods";
pub const SEEDED: &str = "seeded";

struct Harness {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let settings = Settings {
            // Small enough that a fuzzed body or window never costs much; short enough
            // that a list at a future revision answers 504 in the time of a few inputs.
            max_body_bytes: 64 * 1024,
            window: Some(256),
            request_timeout: Duration::from_millis(50),
            ..Settings::default()
        };
        let router = runtime.block_on(async {
            let server = Server::new(settings).await.expect("an in-memory server");
            let router = server.router();
            // The object the patch and replace inputs find.
            let body = format!(
                r#"{{"metadata":{{"name":"{SEEDED}","labels":{{"app":"web"}}}},"data":{{"k":"v"}}}}"#
            );
            seed(&router, MAPS, body).await;
            let pod = format!(
                r#"{{"metadata":{{"name":"{SEEDED}","finalizers":["a"]}},"spec":{{"containers":[
                    {{"name":"web","image":"nginx","ports":[{{"containerPort":80}}],"env":[{{"name":"A","value":"1"}}]}},
                    {{"name":"sidecar","image":"busybox"}}]}}}}"#
            );
            seed(&router, PODS, pod).await;
            // The server lives as long as the process; its router holds what it needs.
            std::mem::forget(server);
            router
        });
        Harness { runtime, router }
    })
}

/// Creates `body` in `collection`. A create waits for the cache to hold its namespace,
/// made as the server starts; on a loaded machine that can take longer than the
/// harness's short request timeout (504), so it is asked again, a bounded number of times.
async fn seed(router: &axum::Router, collection: &str, body: String) {
    for _ in 0..100 {
        let created =
            send(router, Method::POST, collection, Some("application/json"), body.clone().into_bytes()).await;
        match created.0 {
            StatusCode::CREATED => return,
            StatusCode::GATEWAY_TIMEOUT => continue,
            other => panic!("seeding {collection}: {other}"),
        }
    }
    panic!("seeding {collection}: the cache never caught up");
}

async fn send(
    router: &axum::Router,
    method: Method,
    uri: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Option<Vec<u8>>) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(content_type) = content_type {
        request = request.header(http::header::CONTENT_TYPE, content_type);
    }
    let request = request.body(Body::from(body)).expect("a request");
    let response = router.clone().oneshot(request).await.expect("the router is infallible");
    let status = response.status();
    // A watch streams for as long as it is read: only bounded bodies are read whole.
    let bounded = response.headers().contains_key(http::header::CONTENT_LENGTH);
    let body = if bounded {
        Some(axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body").to_vec())
    } else {
        None
    };
    (status, body)
}

/// Percent-encodes what may not stand in a URI as it is; keeps the rest (`&`, `=`, `%`…)
/// so the fuzzer reaches the query parser with its own separators and escapes.
pub fn uri_text(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&byte) {
            text.push(byte as char);
        } else {
            text.push_str(&format!("%{byte:02X}"));
        }
    }
    text
}

/// Sends one request and checks its answer; `uri` must parse as a URI (see [`uri_text`]).
pub fn check(method: Method, uri: &str, content_type: Option<&str>, body: Vec<u8>) {
    let harness = harness();
    let (status, body) =
        harness.runtime.block_on(send(&harness.router, method.clone(), uri, content_type, body));
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{method} {uri}");
    if status.is_client_error() || status.is_server_error() {
        let body = body.unwrap_or_else(|| panic!("{method} {uri}: a refusal has a bounded body"));
        let status_object: serde_json::Value =
            serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{method} {uri}: refusal is not json"));
        assert_eq!(status_object["kind"], "Status", "{method} {uri}: {status_object}");
        assert_eq!(status_object["code"], status.as_u16(), "{method} {uri}: {status_object}");
        let message = status_object["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{method} {uri}: no message");
        assert!(!message.starts_with(char::is_uppercase), "{method} {uri}: {message}");
    } else if let Some(body) = body {
        let answer = serde_json::from_slice::<serde_json::Value>(&body)
            .unwrap_or_else(|_| panic!("{method} {uri}: not json"));
        let written = matches!(method, Method::POST | Method::PUT | Method::PATCH) && !uri.contains("dryRun");
        if written {
            harness.runtime.block_on(protobuf_round_trip(&harness.router, &answer));
        }
    }
}

/// An object a write stored (`answer`, its JSON), read in protobuf and written back in
/// protobuf: the encoder takes whatever the server stored of a built-in kind, and the
/// decoder and validation take whatever the encoder makes.
async fn protobuf_round_trip(router: &axum::Router, answer: &serde_json::Value) {
    let collection = match answer["kind"].as_str() {
        Some("ConfigMap") => MAPS,
        Some("Pod") => PODS,
        _ => return,
    };
    let Some(name) = answer["metadata"]["name"].as_str() else { return };
    let item = format!("{collection}/{name}");
    let request = Request::get(&item)
        .header(http::header::ACCEPT, PROTOBUF)
        .body(Body::empty())
        .expect("a request");
    let response = router.clone().oneshot(request).await.expect("the router is infallible");
    // Gone already (a delete raced it) is fine; anything else but the object is not.
    if response.status() == StatusCode::NOT_FOUND {
        return;
    }
    assert_eq!(response.status(), StatusCode::OK, "GET {item} as protobuf");
    let encoded = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body").to_vec();
    assert!(encoded.starts_with(b"k8s\0"), "GET {item} as protobuf: {encoded:?}");
    let (status, body) = send(router, Method::PUT, &item, Some(PROTOBUF), encoded).await;
    // The answer carries the revision it was read at: a write between is a conflict.
    assert!(
        status == StatusCode::OK || status == StatusCode::CONFLICT,
        "PUT {item} of its own protobuf answer: {status} {:?}",
        body.map(|body| String::from_utf8_lossy(&body).into_owned())
    );
}

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
