//! Custom resources named at start-up, discovery, and watch options over raw HTTP.

mod support;

use kube::{Client, Config};
use serde_json::{json, Value};
use support::Running;
use watchcache_server::{ResourceDef, Settings};

async fn request(client: &Client, method: &str, path: &str, body: Option<Value>) -> (u16, Vec<u8>) {
    typed_request(client, (method, path), "application/json", body).await
}

async fn typed_request(
    client: &Client,
    (method, path): (&str, &str),
    content_type: &str,
    body: Option<Value>,
) -> (u16, Vec<u8>) {
    let body = body.map(|body| body.to_string().into_bytes()).unwrap_or_default();
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(kube::client::Body::from(body))
        .unwrap();
    let response = client.send(request).await.unwrap();
    let code = response.status().as_u16();
    (code, response.into_body().collect_bytes().await.unwrap().to_vec())
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// A server of the default resources and `resource` (`GROUP/VERSION/PLURAL/Kind[/SCOPE]`),
/// with a client of it.
async fn serving_also(resource: &str) -> (Running, Client) {
    let mut settings = Settings::default();
    settings.resources.push(ResourceDef::parse(resource).unwrap());
    let server = Running::start(settings).await;
    let client = Client::try_from(Config::new(server.url().parse().unwrap())).unwrap();
    (server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_resource_is_served_and_discovered() {
    let (server, client) = serving_also("example.com/v1/widgets/Widget").await;

    let groups = json_of(&request(&client, "GET", "/apis", None).await.1);
    assert_eq!(groups["groups"][0]["name"], "example.com");
    assert_eq!(groups["groups"][0]["preferredVersion"]["groupVersion"], "example.com/v1");
    let resources = json_of(&request(&client, "GET", "/apis/example.com/v1", None).await.1);
    assert_eq!(resources["resources"][0]["kind"], "Widget");
    assert_eq!(resources["resources"][0]["namespaced"], true);
    let core = json_of(&request(&client, "GET", "/api/v1", None).await.1);
    let names: Vec<&str> =
        core["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["configmaps", "pods", "secrets", "events", "namespaces"]);
    let scopes: Vec<bool> =
        core["resources"].as_array().unwrap().iter().map(|r| r["namespaced"].as_bool().unwrap()).collect();
    assert_eq!(scopes, [true, true, true, true, false]);
    assert_eq!(request(&client, "GET", "/apis/example.com/v2", None).await.0, 404);

    let widgets = "/apis/example.com/v1/namespaces/default/widgets";
    let widget = json!({ "apiVersion": "example.com/v1", "kind": "Widget", "metadata": { "name": "w" }, "spec": { "size": 3 } });
    let (code, created) = request(&client, "POST", widgets, Some(widget)).await;
    assert_eq!(code, 201);
    let created = json_of(&created);
    assert_eq!(
        (created["apiVersion"].as_str(), created["spec"]["size"].as_u64()),
        (Some("example.com/v1"), Some(3))
    );
    let (code, fetched) = request(&client, "GET", &format!("{widgets}/w"), None).await;
    assert_eq!((code, json_of(&fetched)), (200, created));
    let listed = json_of(&request(&client, "GET", "/apis/example.com/v1/widgets", None).await.1);
    assert_eq!(listed["kind"], "WidgetList");
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    // Another resource's kind in its body is refused.
    let wrong = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "x" } });
    assert_eq!(request(&client, "POST", widgets, Some(wrong)).await.0, 400);

    // Patches as Kubernetes takes them for a custom resource: json and merge patches,
    // not a strategic merge patch (no schema says how its lists merge), nor apply.
    let path = format!("{widgets}/w");
    let patch = |content_type: &'static str, body: Value| {
        let (client, path) = (&client, &path);
        async move {
            let (code, body) = typed_request(client, ("PATCH", path), content_type, Some(body)).await;
            (code, json_of(&body))
        }
    };
    let (code, patched) =
        patch("application/json-patch+json", json!([{ "op": "replace", "path": "/spec/size", "value": 4 }]))
            .await;
    assert_eq!((code, patched["spec"]["size"].as_u64()), (200, Some(4)), "{patched}");
    let (code, patched) = patch("application/merge-patch+json", json!({ "spec": { "colour": "red" } })).await;
    assert_eq!((code, &patched["spec"]), (200, &json!({ "size": 4, "colour": "red" })), "{patched}");
    let (code, refused) = patch("application/strategic-merge-patch+json", json!({ "spec": {} })).await;
    assert_eq!((code, refused["reason"].as_str()), (415, Some("UnsupportedMediaType")), "{refused}");
    let (code, refused) = patch("application/apply-patch+yaml", json!({ "spec": {} })).await;
    assert_eq!(code, 415);
    assert!(refused["message"].as_str().unwrap().contains("client-side apply"), "{refused}");
    // A json patch applies whole or not at all: a failed test leaves the object as it was.
    let failing = json!([
        { "op": "replace", "path": "/spec/size", "value": 5 },
        { "op": "test", "path": "/spec/colour", "value": "blue" }
    ]);
    let (code, refused) = patch("application/json-patch+json", failing).await;
    assert_eq!((code, refused["reason"].as_str()), (422, Some("Invalid")), "{refused}");
    let (code, malformed) = patch("application/json-patch+json", json!({ "op": "add" })).await;
    assert_eq!((code, malformed["reason"].as_str()), (400, Some("BadRequest")), "{malformed}");
    let (_, now) = request(&client, "GET", &path, None).await;
    assert_eq!(json_of(&now), patched, "unchanged by the refused patches");

    // A custom resource's table: NAME and AGE, as for a definition without printer columns.
    let table = http::Request::builder()
        .uri("/apis/example.com/v1/widgets")
        .header("accept", support::TABLE)
        .body(kube::client::Body::empty())
        .unwrap();
    let table = json_of(&client.send(table).await.unwrap().into_body().collect_bytes().await.unwrap());
    let columns = support::table_columns(&table);
    assert_eq!((columns, &table["rows"][0]["cells"][0]), (vec!["Name", "Age"], &json!("w")), "{table}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_ends_at_its_timeout_and_sends_bookmarks_when_asked() {
    let server = Running::start(Settings::default()).await;
    let client = Client::try_from(Config::new(server.url().parse().unwrap())).unwrap();
    let maps = "/api/v1/namespaces/default/configmaps";
    let map = json!({ "metadata": { "name": "a" }, "data": { "k": "v" } });
    assert_eq!(request(&client, "POST", maps, Some(map)).await.0, 201);
    // The response completes by itself after one second: the body is the whole stream.
    let path = format!("{maps}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1");
    let (code, body) = request(&client, "GET", &path, None).await;
    assert_eq!(code, 200);
    let lines: Vec<Value> =
        body.split(|byte| *byte == b'\n').filter(|line| !line.is_empty()).map(json_of).collect();
    assert_eq!(lines[0]["type"], "ADDED");
    assert_eq!(lines[0]["object"]["metadata"]["name"], "a");
    assert_eq!(lines[1]["type"], "BOOKMARK");
    assert_eq!(lines[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
    assert_eq!(
        lines[1]["object"]["metadata"]["resourceVersion"],
        lines[0]["object"]["metadata"]["resourceVersion"]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_scoped_custom_resource_lives_outside_namespaces() {
    let (server, client) = serving_also("example.com/v1/gadgets/Gadget/Cluster").await;
    let resources = json_of(&request(&client, "GET", "/apis/example.com/v1", None).await.1);
    assert_eq!(resources["resources"][0]["namespaced"], false);

    let gadgets = "/apis/example.com/v1/gadgets";
    let gadget = json!({ "metadata": { "name": "g", "namespace": "ignored" }, "spec": { "size": 1 } });
    let (code, created) = request(&client, "POST", gadgets, Some(gadget)).await;
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&created));
    let created = json_of(&created);
    assert_eq!(created["metadata"].get("namespace"), None, "a cluster-scoped object has no namespace");
    let (code, fetched) = request(&client, "GET", &format!("{gadgets}/g"), None).await;
    assert_eq!((code, json_of(&fetched)), (200, created));
    let listed = json_of(&request(&client, "GET", gadgets, None).await.1);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    // Not under a namespace; and a namespaced resource is not outside one.
    for path in [
        "/apis/example.com/v1/namespaces/default/gadgets",
        "/apis/example.com/v1/namespaces/default/gadgets/g",
        "/api/v1/configmaps/g",
    ] {
        assert_eq!(request(&client, "GET", path, None).await.0, 404, "{path}");
    }
    let (code, deleted) = request(&client, "DELETE", &format!("{gadgets}/g"), None).await;
    assert_eq!((code, json_of(&deleted)["status"].as_str()), (200, Some("Success")));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strategic_merge_patch_merges_a_pods_lists_by_their_keys() {
    let server = Running::start(Settings::default()).await;
    let client = Client::try_from(Config::new(server.url().parse().unwrap())).unwrap();
    let pods = "/api/v1/namespaces/default/pods";
    let pod = json!({ "metadata": { "name": "p", "finalizers": ["a"] }, "spec": { "containers": [
        { "name": "web", "image": "nginx:1", "env": [{ "name": "A", "value": "1" }] },
        { "name": "sidecar", "image": "busybox" },
    ] } });
    assert_eq!(request(&client, "POST", pods, Some(pod)).await.0, 201);
    let path = format!("{pods}/p");
    let strategic = |body: Value| {
        let (client, path) = (&client, &path);
        async move {
            let (code, body) =
                typed_request(client, ("PATCH", path), "application/strategic-merge-patch+json", Some(body))
                    .await;
            (code, json_of(&body))
        }
    };
    let (code, patched) = strategic(json!({
        "metadata": { "finalizers": ["b"] },
        "spec": {
            "$setElementOrder/containers": [{ "name": "sidecar" }, { "name": "web" }],
            "containers": [{ "name": "web", "image": "nginx:2", "env": [{ "name": "B", "value": "2" }] }],
        },
    }))
    .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["metadata"]["finalizers"], json!(["a", "b"]), "a set of strings");
    assert_eq!(
        patched["spec"]["containers"],
        json!([
            { "name": "sidecar", "image": "busybox" },
            { "name": "web", "image": "nginx:2", "env": [{ "name": "A", "value": "1" }, { "name": "B", "value": "2" }] },
        ]),
        "merged by name, env by name, in the order asked"
    );

    // A patch that breaks the rules is 400, and the pod stays as it was.
    let (code, refused) = strategic(json!({ "spec": { "containers": [{ "image": "no-name" }] } })).await;
    assert_eq!((code, refused["reason"].as_str()), (400, Some("BadRequest")), "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("does not have name"), "{refused}");
    let (_, now) = request(&client, "GET", &path, None).await;
    assert_eq!(json_of(&now), patched, "unchanged by the refused patch");
    server.stop().await;
}

/// Protobuf bodies that are not an object of the kind are refused, and nothing is stored;
/// a custom resource takes none (as in Kubernetes). Real bodies come from kubectl and
/// client-go (`kubectl.rs`, `client_go.rs`).
#[cfg(feature = "protobuf")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_bodies_that_do_not_decode_are_refused() {
    let (server, client) = serving_also("example.com/v1/widgets/Widget").await;
    let send = |path: &'static str, body: Vec<u8>| {
        let client = &client;
        async move {
            let request = http::Request::builder()
                .method("POST")
                .uri(path)
                .header("content-type", "application/vnd.kubernetes.protobuf")
                .body(kube::client::Body::from(body))
                .unwrap();
            let response = client.send(request).await.unwrap();
            let code = response.status().as_u16();
            (code, json_of(&response.into_body().collect_bytes().await.unwrap()))
        }
    };
    let maps = "/api/v1/namespaces/default/configmaps";
    // Not in the envelope; the envelope cut short; a field of the wrong wire type.
    for body in [b"{\"metadata\":{}}".to_vec(), b"k8s\0\x0a\x20\x0a".to_vec(), b"k8s\0\x0b".to_vec()] {
        let (code, refused) = send(maps, body).await;
        assert_eq!((code, refused["reason"].as_str()), (400, Some("BadRequest")), "{refused}");
    }
    let listed = json_of(&request(&client, "GET", maps, None).await.1);
    assert_eq!(listed["items"], json!([]), "nothing stored");
    let (code, refused) = send("/apis/example.com/v1/namespaces/default/widgets", b"k8s\0".to_vec()).await;
    assert_eq!(code, 415, "{refused}");
    server.stop().await;
}

/// A GET of `path` accepting `accept`: the code, the `Content-Type` and the body.
async fn get_accepting(client: &Client, path: &str, accept: &str) -> (u16, String, Vec<u8>) {
    let request =
        http::Request::get(path).header("accept", accept).body(kube::client::Body::from(Vec::new())).unwrap();
    let response = client.send(request).await.unwrap();
    let code = response.status().as_u16();
    let content_type = response.headers().get("content-type").map(|value| value.to_str().unwrap().to_owned());
    (code, content_type.unwrap_or_default(), response.into_body().collect_bytes().await.unwrap().to_vec())
}

/// A metric's value for `resource` (0 when absent).
#[cfg(feature = "protobuf")]
async fn metric(client: &Client, name: &str, resource: &str) -> u64 {
    let text = client.request_text(http::Request::get("/metrics").body(Vec::new()).unwrap()).await.unwrap();
    let series = format!("{name}{{resource=\"{resource}\"}} ");
    text.lines().find_map(|line| line.strip_prefix(&series)).map_or(0, |value| value.parse().unwrap())
}

/// Protobuf answers (their contents are read by client-go in `client_go.rs`): each object
/// is encoded once however many watches and lists send it, a watch is length-prefixed
/// frames, and a custom resource stays JSON (406 to a client that takes only protobuf).
#[cfg(feature = "protobuf")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_answers_encode_each_object_once() {
    const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
    let (server, client) = serving_also("example.com/v1/widgets/Widget").await;
    let maps = "/api/v1/namespaces/default/configmaps";
    for name in ["a", "b"] {
        let map = json!({ "metadata": { "name": name }, "data": { "k": "v" } });
        assert_eq!(request(&client, "POST", maps, Some(map)).await.0, 201);
    }
    let watch = format!("{maps}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1");
    for _ in 0..3 {
        let (code, content_type, body) = get_accepting(&client, &watch, PROTOBUF).await;
        assert_eq!((code, content_type.as_str()), (200, "application/vnd.kubernetes.protobuf;stream=watch"));
        // Two ADDED frames and the bookmark that ends the initial events, each after its
        // length, and each holding an object in the envelope.
        let mut rest = body.as_slice();
        let mut frames = Vec::new();
        while let Some((length, after)) = rest.split_first_chunk::<4>() {
            let length = u32::from_be_bytes(*length) as usize;
            frames.push(&after[..length]);
            rest = &after[length..];
        }
        assert_eq!(frames.len(), 3, "{body:?}");
        for (frame, kind) in frames.iter().zip([&b"ADDED"[..], b"ADDED", b"BOOKMARK"]) {
            assert_eq!(&frame[2..2 + kind.len()], kind);
            assert!(frame.windows(4).any(|window| window == b"k8s\0"), "enveloped");
        }
    }
    let (code, content_type, list) =
        get_accepting(&client, maps, &format!("{PROTOBUF}, application/json")).await;
    assert_eq!((code, content_type.as_str()), (200, PROTOBUF));
    assert!(list.starts_with(b"k8s\0"));
    let (code, _, _) = get_accepting(&client, &format!("{maps}/a"), PROTOBUF).await;
    assert_eq!(code, 200);
    assert_eq!(
        metric(&client, "watchcache_protobuf_encodes_total", "configmaps").await,
        2,
        "once per object"
    );

    let widgets = "/apis/example.com/v1/namespaces/default/widgets";
    let (code, _, refused) = get_accepting(&client, widgets, PROTOBUF).await;
    assert_eq!((code, json_of(&refused)["reason"].as_str()), (406, Some("NotAcceptable")));
    let (code, content_type, _) =
        get_accepting(&client, widgets, &format!("{PROTOBUF}, application/json")).await;
    assert_eq!((code, content_type.as_str()), (200, "application/json"));
    server.stop().await;
}

/// `/openapi/v2` defines every served kind as v2 readers (kubectl before 1.27) read it:
/// references with siblings unwrapped, a custom resource an object of any fields; in
/// protobuf where the build has the definitions (read by kubectl 1.20 in `kubectl.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_v2_defines_every_served_kind() {
    let (server, client) = serving_also("example.com/v1/widgets/Widget").await;
    let (code, content_type, body) = get_accepting(&client, "/openapi/v2", "application/json").await;
    assert_eq!((code, content_type.as_str()), (200, "application/json"));
    let document = json_of(&body);
    assert_eq!(document["swagger"], "2.0");
    let definitions = document["definitions"].as_object().unwrap();
    let kinds: Vec<&str> = definitions
        .values()
        .filter_map(|schema| schema["x-kubernetes-group-version-kind"][0]["kind"].as_str())
        .collect();
    assert_eq!(kinds.len(), 6, "{kinds:?}");
    for kind in ["ConfigMap", "Pod", "Secret", "Event", "Namespace", "Widget"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let spec = &definitions["io.k8s.api.core.v1.Pod"]["properties"]["spec"];
    assert_eq!(spec["$ref"], "#/definitions/io.k8s.api.core.v1.PodSpec", "{spec}");
    assert!(spec.get("allOf").is_none() && spec["description"].is_string(), "{spec}");
    let text = body.iter().map(|byte| char::from(*byte)).collect::<String>();
    for reference in text.split("\"$ref\":\"#/definitions/").skip(1) {
        let name = &reference[..reference.find('"').unwrap()];
        assert!(definitions.contains_key(name), "{name} is referenced and defined");
    }
    let widget = &definitions["com.example.v1.Widget"];
    assert!(widget.get("properties").is_none(), "{widget}");
    assert_eq!(widget["type"], "object");

    let protobuf = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
    let (code, content_type, body) = get_accepting(&client, "/openapi/v2", protobuf).await;
    if cfg!(feature = "protobuf") {
        assert_eq!((code, content_type.as_str()), (200, "application/octet-stream"));
        assert!(body.windows(b"ConfigMap".len()).any(|window| window == b"ConfigMap"));
    } else {
        assert_eq!(code, 406);
    }
    server.stop().await;
}
