//! The server on etcd, with real etcd members and kube-rs as the client: writes as etcd
//! transactions, out-of-band writes seen, durability across restarts, two replicas
//! sharing revisions, and faults — a compaction past the server's own watch, a member
//! and the leader killed, the server killed — with no client watch closed and every
//! watch ending equal to etcd.

mod support;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams, WatchEvent, WatchParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Client, Config};
use std::collections::BTreeMap;
use std::time::Duration;
use support::etcd::Etcd;
use support::Running;
use watchcache_server::{Settings, StorageSettings};

/// A failsafe for awaits on the server: a hang fails the test instead of blocking CI.
/// Never a synchronisation: every wait below ends on an event, not on time.
const HANG: Duration = Duration::from_secs(120);

fn on(endpoints: Vec<String>) -> Settings {
    Settings {
        storage: StorageSettings::Etcd { servers: endpoints, prefix: "/registry".into() },
        ..Settings::default()
    }
}

fn maps(server: &Running) -> Api<ConfigMap> {
    let client = Client::try_from(Config::new(server.url().parse().unwrap())).unwrap();
    Api::namespaced(client, "default")
}

fn config_map(name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
        data: Some(BTreeMap::from([("value".to_string(), value.to_string())])),
        ..ConfigMap::default()
    }
}

fn revision_of(map: &ConfigMap) -> String {
    map.metadata.resource_version.clone().expect("a resourceVersion")
}

fn status_of(error: kube::Error) -> (u16, String) {
    match error {
        kube::Error::Api(status) => (status.code, status.reason),
        other => panic!("expected an api error, got {other:?}"),
    }
}

/// Name → resourceVersion of every configmap etcd holds, as etcdctl reads it.
fn etcd_state(etcd: &Etcd) -> BTreeMap<String, String> {
    let output = etcd.etcdctl(&["get", "/registry/configmaps/default/", "--prefix", "--write-out", "json"]);
    let response: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let decode = |text: &str| {
        use base64::Engine;
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(text).unwrap()).unwrap()
    };
    let kvs = response["kvs"].as_array().cloned().unwrap_or_default();
    kvs.iter()
        .map(|kv| {
            let key = decode(kv["key"].as_str().unwrap());
            let name = key.rsplit('/').next().unwrap().to_owned();
            (name, kv["mod_revision"].as_u64().unwrap().to_string())
        })
        .collect()
}

/// Name → resourceVersion, as a client following a watch keeps it.
#[derive(Debug, Default)]
struct Followed {
    state: BTreeMap<String, String>,
    /// The last resourceVersion seen (an event's or a bookmark's).
    last: String,
}

impl Followed {
    /// Applies one event; panics on an error event (the server closed the watch).
    fn follow(&mut self, event: WatchEvent<ConfigMap>) {
        match event {
            WatchEvent::Added(map) | WatchEvent::Modified(map) => {
                self.last = revision_of(&map);
                self.state.insert(map.metadata.name.clone().unwrap(), revision_of(&map));
            }
            WatchEvent::Deleted(map) => {
                self.last = revision_of(&map);
                self.state.remove(map.metadata.name.as_deref().unwrap());
            }
            WatchEvent::Bookmark(bookmark) => self.last = bookmark.metadata.resource_version,
            WatchEvent::Error(status) => panic!("the server closed a watch: {status:?}"),
        }
    }
}

/// Reads `stream` until the followed state equals `expected`.
async fn follow_until<S>(followed: &mut Followed, stream: &mut S, expected: &BTreeMap<String, String>)
where
    S: futures::Stream<Item = Result<WatchEvent<ConfigMap>, kube::Error>> + Unpin,
{
    while &followed.state != expected {
        let event = tokio::time::timeout(HANG, stream.try_next()).await.expect("a watch event in time");
        followed.follow(event.expect("the watch goes on").expect("the watch goes on"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_etcd_transactions_and_conflicts_are_409() {
    let etcd = Etcd::start(1);
    let server = Running::start(on(etcd.endpoints())).await;
    let maps = maps(&server);
    let pp = PostParams::default();

    let created = maps.create(&pp, &config_map("a", "1")).await.unwrap();
    assert_eq!(
        etcd_state(&etcd),
        BTreeMap::from([("a".into(), revision_of(&created))]),
        "the resourceVersion is etcd's mod_revision"
    );
    let (code, reason) = status_of(maps.create(&pp, &config_map("a", "again")).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    let mut update = created.clone();
    update.data = Some(BTreeMap::from([("value".into(), "2".into())]));
    let replaced = maps.replace("a", &pp, &update).await.unwrap();
    assert_eq!(replaced.metadata.uid, created.metadata.uid);
    let (code, reason) = status_of(maps.replace("a", &pp, &update).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "Conflict"), "a stale resourceVersion");
    // Without a resourceVersion, a replace is a read-modify-write that etcd decides.
    let mut unconditional = config_map("a", "3");
    unconditional.metadata.resource_version = None;
    let third = maps.replace("a", &pp, &unconditional).await.unwrap();
    assert_eq!(third.data.as_ref().unwrap()["value"], "3");
    // Read back at once (no resourceVersion: a consistent read).
    assert_eq!(revision_of(&maps.get("a").await.unwrap()), revision_of(&third));

    maps.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(etcd_state(&etcd), BTreeMap::new());
    let (code, _) = status_of(maps.get("a").await.unwrap_err());
    assert_eq!(code, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_band_etcd_write_appears_on_a_watch() {
    let etcd = Etcd::start(1);
    let server = Running::start(on(etcd.endpoints())).await;
    let maps = maps(&server);
    let listed = maps.list(&Default::default()).await.unwrap();
    let mut watch = maps
        .watch(&WatchParams::default(), &listed.metadata.resource_version.unwrap())
        .await
        .unwrap()
        .boxed();
    etcd.etcdctl(&["put", "/registry/configmaps/default/outside", &stored_json("outside")]);
    let event = tokio::time::timeout(HANG, watch.try_next()).await.unwrap().unwrap().unwrap();
    let WatchEvent::Added(map) = event else { panic!("expected ADDED, got {event:?}") };
    assert_eq!(map.metadata.name.as_deref(), Some("outside"));
    assert_eq!(map.data.unwrap()["by"], "etcdctl");
    assert_eq!(etcd_state(&etcd)["outside"], revision_of(&maps.get("outside").await.unwrap()));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_and_their_revisions_survive_a_server_restart() {
    let etcd = Etcd::start(1);
    let first = Running::start(on(etcd.endpoints())).await;
    let mut written = BTreeMap::new();
    for name in ["a", "b", "c"] {
        let map = maps(&first).create(&PostParams::default(), &config_map(name, name)).await.unwrap();
        written.insert(name.to_string(), revision_of(&map));
    }
    first.stop().await;
    let second = Running::start(on(etcd.endpoints())).await;
    let listed = maps(&second).list(&Default::default()).await.unwrap();
    let read: BTreeMap<_, _> =
        listed.items.iter().map(|map| (map.metadata.name.clone().unwrap(), revision_of(map))).collect();
    assert_eq!(read, written, "the same objects at the same resourceVersions");
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_revisions_and_a_watch_fails_over_with_no_gap() {
    let etcd = Etcd::start(1);
    let a = Running::start(on(etcd.endpoints())).await;
    let b = Running::start(on(etcd.endpoints())).await;
    let (maps_a, maps_b) = (maps(&a), maps(&b));
    let start = maps_a.list(&Default::default()).await.unwrap().metadata.resource_version.unwrap();

    // A write through A is read through B at once, and watched there.
    let created = maps_a.create(&PostParams::default(), &config_map("x", "1")).await.unwrap();
    assert_eq!(revision_of(&maps_b.get("x").await.unwrap()), revision_of(&created));

    // One watch on A from `start` sees everything; another reads half on A, then
    // resumes on B from the last resourceVersion it saw.
    let mut whole = maps_a.watch(&WatchParams::default(), &start).await.unwrap().boxed();
    let mut on_a = maps_a.watch(&WatchParams::default(), &start).await.unwrap().boxed();
    for value in 2..=20 {
        maps_a.replace("x", &PostParams::default(), &config_map("x", &value.to_string())).await.unwrap();
    }
    let seen = |event: WatchEvent<ConfigMap>| match event {
        WatchEvent::Added(map) | WatchEvent::Modified(map) | WatchEvent::Deleted(map) => revision_of(&map),
        other => panic!("unexpected {other:?}"),
    };
    let mut expected = Vec::new();
    for _ in 0..20 {
        expected.push(seen(whole.try_next().await.unwrap().unwrap()));
    }
    let mut resumed = Vec::new();
    for _ in 0..10 {
        resumed.push(seen(on_a.try_next().await.unwrap().unwrap()));
    }
    drop(on_a);
    let mut on_b = maps_b.watch(&WatchParams::default(), resumed.last().unwrap()).await.unwrap().boxed();
    for _ in 10..20 {
        resumed.push(seen(on_b.try_next().await.unwrap().unwrap()));
    }
    assert_eq!(resumed, expected, "no gap and no duplicate across replicas");
    a.stop().await;
    b.stop().await;
}

/// A reflector on each of two replicas, under writes through both, ends equal to the
/// other and to etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_reflectors_on_two_replicas_converge() {
    let etcd = Etcd::start(1);
    let a = Running::start(on(etcd.endpoints())).await;
    let b = Running::start(on(etcd.endpoints())).await;
    let (mut readers, mut reflecting) = (Vec::new(), Vec::new());
    for server in [&a, &b] {
        let (reader, writer) = reflector::store::<ConfigMap>();
        let stream = reflector(writer, watcher(maps(server), watcher::Config::default()))
            .default_backoff()
            .applied_objects();
        reflecting.push(tokio::spawn(stream.for_each(|_| async {})));
        readers.push(reader);
    }
    for index in 0..60 {
        let maps = if index % 2 == 0 { maps(&a) } else { maps(&b) };
        let name = format!("m{}", index % 7);
        if index % 5 == 4 {
            let _ = maps.delete(&name, &DeleteParams::default()).await;
        } else if maps.create(&PostParams::default(), &config_map(&name, "0")).await.is_err() {
            maps.replace(&name, &PostParams::default(), &{
                let mut map = config_map(&name, &index.to_string());
                map.metadata.resource_version = None;
                map
            })
            .await
            .unwrap();
        }
    }
    let expected = etcd_state(&etcd);
    for reader in &readers {
        let state = || {
            reader
                .state()
                .iter()
                .map(|map| (map.metadata.name.clone().unwrap(), revision_of(map)))
                .collect::<BTreeMap<_, _>>()
        };
        tokio::time::timeout(HANG, async {
            while state() != expected {
                reader.wait_until_ready().await.unwrap();
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("each reflector ends equal to etcd");
    }
    // Stopped before the servers: a reflector left retrying a stopped server would keep
    // the test's runtime from shutting down.
    reflecting.iter().for_each(tokio::task::JoinHandle::abort);
    a.stop().await;
    b.stop().await;
}

/// The Kubernetes Cacher ends every watch when its etcd watch is compacted away. Here
/// the server's member is cut off while the others take writes and compact past the
/// server's revision; when it comes back, the server relists — and its 100 open watches
/// stay open, each ending equal to etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_past_the_servers_watch_closes_no_client_watch() {
    let mut etcd = Etcd::start(3);
    let server = Running::start(on(vec![etcd.endpoints()[0].clone()])).await;
    let maps = maps(&server);
    for name in ["keep", "change", "remove"] {
        maps.create(&PostParams::default(), &config_map(name, "0")).await.unwrap();
    }
    let start = maps.list(&Default::default()).await.unwrap().metadata.resource_version.unwrap();
    // Each watch starts where the list left off, so it follows from the listed state.
    let listed = etcd_state(&etcd);
    let mut watches = Vec::new();
    for _ in 0..100 {
        let stream = maps.watch(&WatchParams::default(), &start).await.unwrap().boxed();
        watches.push((Followed { state: listed.clone(), last: start.clone() }, stream));
    }

    etcd.kill(0);
    etcd.etcdctl(&["put", "/registry/configmaps/default/change", &stored_json("change")]);
    etcd.etcdctl(&["del", "/registry/configmaps/default/remove"]);
    etcd.etcdctl(&["put", "/registry/configmaps/default/new", &stored_json("new")]);
    let status = etcd.etcdctl(&["endpoint", "status", "--write-out", "json"]);
    let statuses: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let revision = statuses[0]["Status"]["header"]["revision"].as_u64().unwrap();
    etcd.etcdctl(&["compact", &revision.to_string(), "--physical"]);
    etcd.restart(0);

    let expected = etcd_state(&etcd);
    for (followed, stream) in &mut watches {
        follow_until(followed, stream, &expected).await;
    }
    let metrics = metrics_text(&server).await;
    assert!(
        metrics.contains(r#"watchcache_relists_total{resource="configmaps"} 2"#),
        "relisted once: {metrics}"
    );
    assert!(metrics.contains(r#"watchcache_terminations_total{resource="configmaps"} 0"#), "{metrics}");
    server.stop().await;
}

/// A configmap as someone other than the server writes it to etcd.
fn stored_json(name: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"default"}},"data":{{"by":"etcdctl"}}}}"#
    )
}

async fn metrics_text(server: &Running) -> String {
    let client = Client::try_from(Config::new(server.url().parse().unwrap())).unwrap();
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    client.request_text(request).await.unwrap()
}

/// Writes continue through a three-member cluster while its leader is killed: every
/// acknowledged write is in etcd afterwards, and a watch ends equal to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_under_writes_loses_no_acknowledged_write() {
    let mut etcd = Etcd::start(3);
    let server = Running::start(on(etcd.endpoints())).await;
    let maps = maps(&server);
    let start = maps.list(&Default::default()).await.unwrap().metadata.resource_version.unwrap();
    let mut watch = maps.watch(&WatchParams::default(), &start).await.unwrap().boxed();
    let mut acknowledged = BTreeMap::new();
    for index in 0..60 {
        if index == 20 {
            let leader = etcd.leader();
            etcd.kill(leader);
        }
        let name = format!("m{index}");
        // During the election a write may fail; a client retries it.
        let created = loop {
            match maps.create(&PostParams::default(), &config_map(&name, "v")).await {
                Ok(created) => break created,
                Err(kube::Error::Api(status)) if status.code == 409 => break maps.get(&name).await.unwrap(),
                Err(_) => tokio::task::yield_now().await,
            }
        };
        acknowledged.insert(name, revision_of(&created));
    }
    let in_etcd = etcd_state(&etcd);
    for (name, revision) in &acknowledged {
        assert_eq!(in_etcd.get(name), Some(revision), "{name} was acknowledged");
    }
    let mut followed = Followed::default();
    follow_until(&mut followed, &mut watch, &in_etcd).await;
    server.stop().await;
}

/// etcd itself restarted: the server's watches stay open and see what was written after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_restart_closes_no_watch() {
    let mut etcd = Etcd::start(1);
    let server = Running::start(on(etcd.endpoints())).await;
    let maps = maps(&server);
    maps.create(&PostParams::default(), &config_map("before", "1")).await.unwrap();
    let start = maps.list(&Default::default()).await.unwrap().metadata.resource_version.unwrap();
    let mut watch = maps.watch(&WatchParams::default(), &start).await.unwrap().boxed();
    etcd.kill(0);
    etcd.restart(0);
    let after = loop {
        match maps.create(&PostParams::default(), &config_map("after", "2")).await {
            Ok(created) => break created,
            Err(_) => tokio::task::yield_now().await,
        }
    };
    let event = tokio::time::timeout(HANG, watch.try_next()).await.unwrap().unwrap().unwrap();
    let WatchEvent::Added(map) = event else { panic!("expected ADDED, got {event:?}") };
    assert_eq!(revision_of(&map), revision_of(&after));
    server.stop().await;
}

/// `watchcache-server` killed with SIGKILL and started again: every acknowledged write is
/// there, at its resourceVersion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_killed_with_sigkill_loses_nothing() {
    let etcd = Etcd::start(1);
    let servers = etcd.endpoints().join(",");
    let mut process = support::ServerProcess::start(&["--etcd-servers", &servers]);
    let maps = Api::<ConfigMap>::namespaced(process.client(), "default");
    let mut acknowledged = BTreeMap::new();
    for index in 0..20 {
        let map = maps.create(&PostParams::default(), &config_map(&format!("m{index}"), "v")).await.unwrap();
        acknowledged.insert(format!("m{index}"), revision_of(&map));
    }
    process.kill();
    let process = support::ServerProcess::start(&["--etcd-servers", &servers]);
    let maps = Api::<ConfigMap>::namespaced(process.client(), "default");
    let listed = maps.list(&Default::default()).await.unwrap();
    let read: BTreeMap<_, _> =
        listed.items.iter().map(|map| (map.metadata.name.clone().unwrap(), revision_of(map))).collect();
    assert_eq!(read, acknowledged);
}

/// Sends a raw GET once (kube-rs retries 429, 503 and 504 by default); returns the code
/// and the body as JSON.
async fn get_json(server: &Running, path: &str) -> (u16, serde_json::Value) {
    let mut config = Config::new(server.url().parse().unwrap());
    config.default_retry = false;
    let client = Client::try_from(config).unwrap();
    let request = http::Request::get(path).body(kube::client::Body::empty()).unwrap();
    let response = client.send(request).await.unwrap();
    let code = response.status().as_u16();
    let bytes = response.into_body().collect_bytes().await.unwrap();
    (code, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

/// A consistent read of a resource nobody wrote to, after writes to another: the server
/// confirms with etcd that the quiet resource did not change, and answers at etcd's
/// revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consistent_read_of_a_quiet_resource_is_at_etcds_revision() {
    let etcd = Etcd::start(1);
    let server = Running::start(on(etcd.endpoints())).await;
    let written = maps(&server).create(&PostParams::default(), &config_map("a", "1")).await.unwrap();
    let (code, pods) = get_json(&server, "/api/v1/namespaces/default/pods").await;
    assert_eq!(code, 200);
    let listed: u64 = pods["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert!(
        listed >= revision_of(&written).parse().unwrap(),
        "pods listed at {listed}, before the configmap write"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_newer_than_the_cache_is_504_with_the_cause_kubernetes_gives() {
    let etcd = Etcd::start(1);
    let server = Running::start(on(etcd.endpoints())).await;
    let (code, status) =
        get_json(&server, "/api/v1/namespaces/default/configmaps?resourceVersion=999999").await;
    assert_eq!((code, status["reason"].as_str()), (504, Some("Timeout")));
    assert_eq!(status["details"]["causes"][0]["reason"], "ResourceVersionTooLarge");
    assert_eq!(status["details"]["retryAfterSeconds"], 1);
    server.stop().await;
}

/// A watch or an exact list from before the cacher's window is served from etcd's
/// history while etcd has it, and is 410 once etcd has compacted it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_older_than_the_window_come_from_etcd_until_it_compacts_them() {
    let etcd = Etcd::start(1);
    let server = Running::start(Settings { window: Some(4), ..on(etcd.endpoints()) }).await;
    let maps = maps(&server);
    let pp = PostParams::default();
    maps.create(&pp, &config_map("gone", "0")).await.unwrap();
    let early = revision_of(&maps.create(&pp, &config_map("kept", "0")).await.unwrap());
    maps.delete("gone", &DeleteParams::default()).await.unwrap();
    for value in 1..=10 {
        maps.replace("kept", &pp, &{
            let mut map = config_map("kept", &value.to_string());
            map.metadata.resource_version = None;
            map
        })
        .await
        .unwrap();
    }
    maps.create(&pp, &config_map("new", "0")).await.unwrap();

    let exact =
        format!("/api/v1/namespaces/default/configmaps?resourceVersion={early}&resourceVersionMatch=Exact");
    let (code, list) = get_json(&server, &exact).await;
    assert_eq!(code, 200, "{list}");
    let names: Vec<_> =
        list["items"].as_array().unwrap().iter().map(|item| item["metadata"]["name"].clone()).collect();
    assert_eq!(names, ["gone", "kept"], "the state at {early}, from etcd");

    let mut followed = Followed {
        state: BTreeMap::from([("gone".to_string(), String::new()), ("kept".to_string(), early.clone())]),
        last: early.clone(),
    };
    let mut watch = maps.watch(&WatchParams::default(), &early).await.unwrap().boxed();
    follow_until(&mut followed, &mut watch, &etcd_state(&etcd)).await;

    let now = etcd_state(&etcd).values().map(|revision| revision.parse::<u64>().unwrap()).max().unwrap();
    etcd.etcdctl(&["compact", &now.to_string()]);
    let (code, status) = get_json(&server, &exact).await;
    assert_eq!((code, status["reason"].as_str()), (410, Some("Expired")), "{status}");
    let event = maps.watch(&WatchParams::default(), &early).await.unwrap().boxed().try_next().await.unwrap();
    assert!(matches!(event, Some(WatchEvent::Error(ref status)) if status.code == 410), "{event:?}");
    server.stop().await;
}

/// A precondition taken from the answer a replica just gave holds on the other replica,
/// though the other's cache may not have the write yet: the check is etcd's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_precondition_from_the_last_answer_holds_on_a_lagging_replica() {
    let etcd = Etcd::start(1);
    let a = Running::start(on(etcd.endpoints())).await;
    let b = Running::start(on(etcd.endpoints())).await;
    let replicas = [maps(&a), maps(&b)];
    // Chains of writes to four names at once, each write on the replica the previous one
    // did not go through, with the revision it answered as the next one's precondition.
    let chains = (0..4).map(|chain| {
        let replicas = replicas.clone();
        tokio::spawn(async move {
            let (pp, name) = (PostParams::default(), format!("x{chain}"));
            let mut last = replicas[0].create(&pp, &config_map(&name, "0")).await.unwrap();
            for value in 1..=50 {
                let mut next = config_map(&name, &value.to_string());
                next.metadata.resource_version = last.metadata.resource_version.clone();
                last = replicas[value % 2].replace(&name, &pp, &next).await.expect("the precondition holds");
            }
            let preconditions =
                kube::api::Preconditions { resource_version: last.metadata.resource_version, uid: None };
            let delete = DeleteParams { preconditions: Some(preconditions), ..DeleteParams::default() };
            replicas[0].delete(&name, &delete).await.expect("the delete's precondition holds too");
        })
    });
    for chain in futures::future::join_all(chains).await {
        chain.unwrap();
    }
    a.stop().await;
    b.stop().await;
}

/// A watch from before the window gets etcd's history exactly: every change, in order,
/// each at its own revision, so that it can be resumed from any of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_before_the_window_is_the_exact_history_and_resumes_anywhere() {
    let etcd = Etcd::start(1);
    let server = Running::start(Settings { window: Some(4), ..on(etcd.endpoints()) }).await;
    let maps = maps(&server);
    let pp = PostParams::default();
    // (event type, name, resourceVersion) of every write, as it was answered.
    let mut writes: Vec<(&str, String, String)> = Vec::new();
    for (name, value) in [("b", "0"), ("a", "0"), ("c", "0")] {
        writes.push((
            "ADDED",
            name.into(),
            revision_of(&maps.create(&pp, &config_map(name, value)).await.unwrap()),
        ));
    }
    for round in 1..=3 {
        for name in ["c", "a"] {
            let replaced = maps.replace(name, &pp, &config_map(name, &round.to_string())).await.unwrap();
            writes.push(("MODIFIED", name.into(), revision_of(&replaced)));
        }
    }
    // A configmap's delete answers a `Status`, without the revision; the only writer's
    // next write takes the one after it (each etcd transaction takes one revision).
    let deleted = maps.delete("b", &DeleteParams::default()).await.unwrap();
    assert!(deleted.is_right(), "a status, as Kubernetes answers a configmap's delete");
    let again = revision_of(&maps.create(&pp, &config_map("b", "again")).await.unwrap());
    let before_again = again.parse::<u64>().expect("a revision") - 1;
    writes.push(("DELETED", "b".into(), before_again.to_string()));
    writes.push(("ADDED", "b".into(), again));
    // A consistent list: the cacher has applied every write, so its 4-event window moves
    // no further while the watches below read (a watch it passed would end with 410).
    maps.list(&Default::default()).await.unwrap();

    // The events of a watch from the revision of write `from`, as many as writes after it.
    let events = |from: usize| {
        let maps = maps.clone();
        let count = writes.len() - from - 1;
        let from = writes[from].2.clone();
        async move {
            let params = WatchParams { bookmarks: false, ..WatchParams::default() };
            let mut watch = maps.watch(&params, &from).await.unwrap().boxed();
            let mut seen = Vec::new();
            while seen.len() < count {
                let event =
                    tokio::time::timeout(HANG, watch.try_next()).await.expect("in time").unwrap().unwrap();
                seen.push(match event {
                    WatchEvent::Added(map) => {
                        ("ADDED", map.metadata.name.clone().unwrap(), revision_of(&map))
                    }
                    WatchEvent::Modified(map) => {
                        ("MODIFIED", map.metadata.name.clone().unwrap(), revision_of(&map))
                    }
                    WatchEvent::Deleted(map) => {
                        ("DELETED", map.metadata.name.clone().unwrap(), revision_of(&map))
                    }
                    other => panic!("unexpected {other:?}"),
                });
            }
            seen
        }
    };
    assert_eq!(events(1).await, writes[2..], "the history after the second write");
    assert_eq!(events(6).await, writes[7..], "resumed from the middle of that history");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_live_in_etcd_and_every_replica_agrees_on_them() {
    use k8s_openapi::api::core::v1::Namespace;
    let etcd = Etcd::start(1);
    let a = Running::start(on(etcd.endpoints())).await;
    let b = Running::start(on(etcd.endpoints())).await;
    // The initial namespaces, made once whichever replica started first, at kube-apiserver's keys.
    let output = etcd.etcdctl(&["get", "/registry/namespaces/", "--prefix", "--keys-only"]);
    let keys: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    assert_eq!(
        keys,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
            .map(|name| format!("/registry/namespaces/{name}"))
    );
    let namespaces = |server: &Running| -> Api<Namespace> {
        Api::all(Client::try_from(Config::new(server.url().parse().unwrap())).unwrap())
    };
    let uid_of = |namespace: Namespace| namespace.metadata.uid.expect("a uid");
    let (default_a, default_b) =
        (namespaces(&a).get("default").await.unwrap(), namespaces(&b).get("default").await.unwrap());
    assert_eq!(uid_of(default_a), uid_of(default_b), "one default namespace");

    // A namespace created through A takes objects through B at once.
    let team = Namespace {
        metadata: ObjectMeta { name: Some("team".into()), ..ObjectMeta::default() },
        ..Namespace::default()
    };
    namespaces(&a).create(&PostParams::default(), &team).await.unwrap();
    let client_b = Client::try_from(Config::new(b.url().parse().unwrap())).unwrap();
    let team_maps: Api<ConfigMap> = Api::namespaced(client_b.clone(), "team");
    team_maps
        .create(&PostParams::default(), &config_map("m", "1"))
        .await
        .expect("the namespace exists for B");
    let nowhere: Api<ConfigMap> = Api::namespaced(client_b, "nowhere");
    let refused = nowhere.create(&PostParams::default(), &config_map("m", "1")).await.unwrap_err();
    assert_eq!(status_of(refused), (404, "NotFound".into()));
    // Deleted through B with what it holds, in etcd too.
    namespaces(&b).delete("team", &DeleteParams::default()).await.unwrap();
    let left = etcd.etcdctl(&["get", "/registry/configmaps/team/", "--prefix", "--keys-only"]);
    assert!(String::from_utf8_lossy(&left.stdout).trim().is_empty(), "{left:?}");
    a.stop().await;
    b.stop().await;
}
