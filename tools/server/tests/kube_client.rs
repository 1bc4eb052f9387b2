//! kube-rs, unchanged, against the server: typed `Api`s, lists with selectors and pages,
//! watches, `kube::runtime::watcher` (default and streaming lists) and a reflector.

mod support;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodSpec};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams, WatchEvent, WatchParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Client, Config};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::Duration;
use support::Running;
use watchcache_server::Settings;

fn client(server: &Running) -> Client {
    let config = Config::new(server.url().parse().expect("a url"));
    Client::try_from(config).expect("a client")
}

fn config_map(name: &str, labels: &[(&str, &str)], value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("value".to_string(), value.to_string())])),
        ..ConfigMap::default()
    }
}

fn status_of(error: kube::Error) -> (u16, String) {
    match error {
        kube::Error::Api(status) => (status.code, status.reason),
        other => panic!("expected an api error, got {other:?}"),
    }
}

fn value_of(map: &ConfigMap) -> Option<&str> {
    map.data.as_ref()?.get("value").map(String::as_str)
}

/// A failsafe for awaits on the server: a hang fails the test instead of blocking CI.
/// Never a synchronisation: every wait below ends on an event, not on time.
const HANG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_replace_delete_with_conflicts() {
    let server = Running::start(Settings::default()).await;
    let maps: Api<ConfigMap> = Api::namespaced(client(&server), "default");
    let pp = PostParams::default();

    let created = maps.create(&pp, &config_map("a", &[("app", "x")], "1")).await.unwrap();
    let meta = &created.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    let first_revision = meta.resource_version.clone().unwrap();

    let (code, reason) = status_of(maps.create(&pp, &config_map("a", &[], "again")).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(value_of(&maps.get("a").await.unwrap()), Some("1"), "a refused create changes nothing");

    let mut update = created.clone();
    update.data = Some(BTreeMap::from([("value".into(), "2".into())]));
    let replaced = maps.replace("a", &pp, &update).await.unwrap();
    assert_ne!(replaced.metadata.resource_version.as_deref(), Some(first_revision.as_str()));
    assert_eq!(replaced.metadata.uid, created.metadata.uid, "a replace keeps the identity");

    // `update` still names the first revision: stale.
    let (code, reason) = status_of(maps.replace("a", &pp, &update).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert_eq!(value_of(&maps.get("a").await.unwrap()), Some("2"), "a stale replace changes nothing");

    // As Kubernetes: a `Status` `Success` naming the configmap (a pod's delete answers
    // with the pod).
    let deleted = maps.delete("a", &DeleteParams::default()).await.unwrap().right().expect("a status");
    let details = deleted.details.expect("details");
    assert_eq!((details.name.as_str(), details.kind.as_str()), ("a", "configmaps"));
    assert_eq!(Some(details.uid), created.metadata.uid, "the deleted object's uid");
    let (code, reason) = status_of(maps.get("a").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
    let (code, _) = status_of(maps.delete("a", &DeleteParams::default()).await.unwrap_err());
    assert_eq!(code, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_filter_by_labels_and_page_at_one_revision() {
    let server = Running::start(Settings::default()).await;
    let maps: Api<ConfigMap> = Api::namespaced(client(&server), "default");
    let pp = PostParams::default();
    for at in 0..25 {
        let app = if at % 5 == 0 { "a" } else { "b" };
        maps.create(&pp, &config_map(&format!("m{at:02}"), &[("app", app)], "v")).await.unwrap();
    }
    let only_a = maps.list(&ListParams::default().labels("app=a")).await.unwrap();
    let names: Vec<_> = only_a.items.iter().filter_map(|m| m.metadata.name.clone()).collect();
    assert_eq!(names, ["m00", "m05", "m10", "m15", "m20"]);
    let not_a = maps.list(&ListParams::default().labels("app notin (a)")).await.unwrap();
    assert_eq!(not_a.items.len(), 20);

    // Pages of 7; between pages the state changes, and every page still shows the first
    // page's revision.
    let mut params = ListParams::default().limit(7);
    let mut seen = Vec::new();
    let mut revision = None;
    loop {
        let page = maps.list(&params).await.unwrap();
        revision.get_or_insert(page.metadata.resource_version.clone());
        assert_eq!(Some(page.metadata.resource_version.clone()), revision, "one revision for every page");
        seen.extend(
            page.items.iter().map(|m| (m.metadata.name.clone().unwrap(), value_of(m).unwrap().to_owned())),
        );
        maps.create(&pp, &config_map(&format!("late{}", seen.len()), &[], "new")).await.unwrap();
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(seen.len(), 25, "the late objects are after the pages' revision");
    assert!(seen.iter().all(|(name, _)| name.starts_with('m')));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumes_after_a_revision_and_an_expired_one_gets_410() {
    let server = Running::start(Settings { window: Some(16), ..Settings::default() }).await;
    let maps: Api<ConfigMap> = Api::namespaced(client(&server), "default");
    let pp = PostParams::default();
    let first = maps.create(&pp, &config_map("w", &[], "0")).await.unwrap();
    let from = first.metadata.resource_version.clone().unwrap();
    let mut current = first;
    for value in 1..=3 {
        current.data = Some(BTreeMap::from([("value".into(), value.to_string())]));
        current = maps.replace("w", &pp, &current).await.unwrap();
    }
    maps.delete("w", &DeleteParams::default()).await.unwrap();

    let mut events = maps.watch(&WatchParams::default(), &from).await.unwrap().boxed();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        match tokio::time::timeout(HANG, events.try_next()).await.expect("an event").unwrap() {
            Some(WatchEvent::Modified(map)) => seen.push(format!("modified {}", value_of(&map).unwrap())),
            Some(WatchEvent::Deleted(map)) => seen.push(format!("deleted {}", value_of(&map).unwrap())),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["modified 1", "modified 2", "modified 3", "deleted 3"]);

    for at in 0..40 {
        maps.create(&pp, &config_map(&format!("x{at}"), &[], "v")).await.unwrap();
    }
    let mut expired = maps.watch(&WatchParams::default(), &from).await.unwrap().boxed();
    match tokio::time::timeout(HANG, expired.try_next()).await.expect("an event").unwrap() {
        Some(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected a 410 error event, got {other:?}"),
    }
    server.stop().await;
}

/// Applies `changes` random creates, replaces and deletes over a few names.
async fn random_changes(maps: &Api<ConfigMap>, seed: u64, changes: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let pp = PostParams::default();
    for step in 0..changes {
        let name = format!("r{}", rng.gen_range(0..40));
        let labels = [("app", if rng.gen_bool(0.5) { "a" } else { "b" })];
        match maps.get_opt(&name).await.unwrap() {
            None => drop(maps.create(&pp, &config_map(&name, &labels, &step.to_string())).await.unwrap()),
            Some(_) if rng.gen_bool(0.3) => drop(maps.delete(&name, &DeleteParams::default()).await.unwrap()),
            Some(mut map) => {
                map.data = Some(BTreeMap::from([("value".into(), step.to_string())]));
                map.metadata.labels =
                    Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
                maps.replace(&name, &pp, &map).await.unwrap();
            }
        }
    }
}

type Snapshot = BTreeMap<String, (Option<String>, Option<String>)>;

fn snapshot<'a>(maps: impl IntoIterator<Item = &'a ConfigMap>) -> Snapshot {
    maps.into_iter()
        .map(|m| {
            let name = m.metadata.name.clone().unwrap();
            (name, (m.metadata.resource_version.clone(), value_of(m).map(str::to_owned)))
        })
        .collect()
}

/// Runs a reflector with `config` through random changes and checks that its store ends
/// equal to the server's list.
async fn reflector_ends_equal(config: watcher::Config, seed: u64, changes: usize) {
    let server = Running::start(Settings::default()).await;
    let maps: Api<ConfigMap> = Api::namespaced(client(&server), "default");
    random_changes(&maps, seed, 50).await;
    let (reader, writer) = reflector::store();
    // The reflector applies each event to the store before yielding it; a count of
    // events lets the test wait for the next one.
    let (applied, mut on_applied) = tokio::sync::watch::channel(0u64);
    let mut events = reflector(writer, watcher(maps.clone(), config)).applied_objects().boxed();
    let driver = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            // The watcher retries by itself after an error (a relist after a 410).
            if let Err(error) = event {
                eprintln!("watcher error (it retries): {error}");
            }
            applied.send_modify(|count| *count += 1);
        }
    });
    tokio::time::timeout(HANG, reader.wait_until_ready()).await.expect("ready").unwrap();
    random_changes(&maps, seed + 1, changes).await;
    let expected = snapshot(&maps.list(&ListParams::default()).await.unwrap().items);
    tokio::time::timeout(HANG, async {
        loop {
            on_applied.borrow_and_update();
            if snapshot(reader.state().iter().map(|m| &**m)) == expected {
                break;
            }
            on_applied.changed().await.expect("the watcher goes on");
        }
    })
    .await
    .expect("the reflector reached the server's state");
    driver.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reflector_ends_equal_to_the_list_after_1000_random_changes() {
    reflector_ends_equal(watcher::Config::default(), 7, 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_list_reflector_ends_equal_too() {
    reflector_ends_equal(watcher::Config::default().streaming_lists(), 11, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_select_by_node_name_through_the_index() {
    let server = Running::start(Settings::default()).await;
    let pods: Api<Pod> = Api::namespaced(client(&server), "default");
    let pp = PostParams::default();
    for (name, node) in [("p1", Some("n1")), ("p2", Some("n2")), ("p3", Some("n1")), ("p4", None)] {
        let pod = Pod {
            metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
            spec: Some(PodSpec {
                node_name: node.map(str::to_owned),
                containers: vec![],
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        pods.create(&pp, &pod).await.unwrap();
    }
    let names = |list: kube::core::ObjectList<Pod>| -> Vec<String> {
        list.items.into_iter().filter_map(|p| p.metadata.name).collect()
    };
    let on_n1 = pods.list(&ListParams::default().fields("spec.nodeName=n1")).await.unwrap();
    assert_eq!(names(on_n1), ["p1", "p3"]);
    let unscheduled = pods.list(&ListParams::default().fields("spec.nodeName=")).await.unwrap();
    assert_eq!(names(unscheduled), ["p4"]);
    // Other fields Kubernetes makes selectable on pods are served, unset ones empty; a
    // pod is created `Pending`, as in Kubernetes.
    let running = pods.list(&ListParams::default().fields("status.phase=Running")).await.unwrap();
    assert!(running.items.is_empty());
    let fields = "status.phase=Pending,status.podIP=,spec.nodeName=n1";
    let pending = pods.list(&ListParams::default().fields(fields)).await.unwrap();
    assert_eq!(names(pending), ["p1", "p3"]);
    let (code, _) = status_of(pods.list(&ListParams::default().fields("spec.hostname=x")).await.unwrap_err());
    assert_eq!(code, 400);

    // A watch on n2 sees p2 and then a pod moved onto n2, as ADDED.
    let mut events =
        pods.watch(&WatchParams::default().fields("spec.nodeName=n2"), "0").await.unwrap().boxed();
    let mut moved = pods.get("p4").await.unwrap();
    moved.spec.as_mut().unwrap().node_name = Some("n2".into());
    pods.replace("p4", &pp, &moved).await.unwrap();
    let mut added = Vec::new();
    while added.len() < 2 {
        match tokio::time::timeout(HANG, events.try_next()).await.expect("an event").unwrap() {
            Some(WatchEvent::Added(pod)) => added.push(pod.metadata.name.unwrap()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(added, ["p2", "p4"]);
    // A pod's delete answers with the pod, at the deleting revision (its watch sees the same).
    let deleted = pods.delete("p4", &DeleteParams::default()).await.unwrap().left().expect("the pod");
    match tokio::time::timeout(HANG, events.try_next()).await.expect("an event").unwrap() {
        Some(WatchEvent::Deleted(pod)) => {
            assert_eq!(pod.metadata.resource_version, deleted.metadata.resource_version)
        }
        other => panic!("unexpected {other:?}"),
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_falls_out_of_the_window_relists_and_ends_equal() {
    let settings =
        Settings { window: Some(4), write_timeout: Duration::from_secs(120), ..Settings::default() };
    let server = Running::start(settings).await;
    let maps: Api<ConfigMap> = Api::namespaced(client(&server), "default");
    random_changes(&maps, 3, 20).await;
    let (reader, writer) = reflector::store();
    let mut events = reflector(writer, watcher(maps.clone(), watcher::Config::default())).boxed();
    while !matches!(
        tokio::time::timeout(HANG, events.try_next()).await.expect("an event"),
        Ok(Some(watcher::Event::InitDone))
    ) {}
    // While the watcher is not polled, 20 MB of changes: more than the sockets buffer, so
    // the server's side of the watch stops reading and falls out of the 4-event window.
    let payload = "x".repeat(100_000);
    for at in 0..200 {
        maps.create(&PostParams::default(), &config_map(&format!("big{at:03}"), &[], &payload))
            .await
            .unwrap();
    }
    let expected = snapshot(&maps.list(&ListParams::default()).await.unwrap().items);
    let mut relists = 0;
    tokio::time::timeout(HANG, async {
        while relists == 0 || snapshot(reader.state().iter().map(|m| &**m)) != expected {
            match events.try_next().await {
                Ok(Some(watcher::Event::Init)) => relists += 1,
                Ok(Some(_)) => {}
                Ok(None) => panic!("the watcher ended"),
                // The 410 comes through as an error; the watcher relists by itself.
                Err(error) => eprintln!("watcher error (it relists): {error}"),
            }
        }
    })
    .await
    .expect("the watcher relisted and reached the server's state");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_answer_as_the_write_would_and_store_nothing() {
    use kube::api::{Patch, PatchParams};
    let server = Running::start(Settings::default()).await;
    let maps: Api<ConfigMap> = Api::default_namespaced(client(&server));
    let kept = maps.create(&PostParams::default(), &config_map("kept", &[], "1")).await.unwrap();
    let before = maps.list(&ListParams::default()).await.unwrap();
    let dry = PostParams { dry_run: true, ..PostParams::default() };

    let created = maps.create(&dry, &config_map("new", &[], "1")).await.unwrap();
    assert_eq!(created.metadata.name.as_deref(), Some("new"));
    let mut changed = kept.clone();
    changed.data = Some(BTreeMap::from([("value".to_string(), "2".to_string())]));
    let replaced = maps.replace("kept", &dry, &changed).await.unwrap();
    assert_eq!(value_of(&replaced), Some("2"), "the answer is the object as it would be stored");
    let patch = Patch::Merge(serde_json::json!({ "data": { "value": "3" } }));
    let patched =
        maps.patch("kept", &PatchParams { dry_run: true, ..PatchParams::default() }, &patch).await.unwrap();
    assert_eq!(value_of(&patched), Some("3"));
    let deleted =
        maps.delete("kept", &DeleteParams { dry_run: true, ..DeleteParams::default() }).await.unwrap();
    assert!(deleted
        .right()
        .is_some_and(|status| status.details.is_some_and(|details| details.name == "kept")));
    // A dry run is checked as the write is: a name taken, a stale precondition.
    let taken = maps.create(&dry, &config_map("kept", &[], "1")).await.unwrap_err();
    assert_eq!(status_of(taken), (409, "AlreadyExists".into()));
    let mut stale = kept.clone();
    let current: u64 = kept.metadata.resource_version.as_deref().unwrap().parse().unwrap();
    stale.metadata.resource_version = Some((current + 1000).to_string());
    assert_eq!(status_of(maps.replace("kept", &dry, &stale).await.unwrap_err()), (409, "Conflict".into()));

    let after = maps.list(&ListParams::default()).await.unwrap();
    assert_eq!(after.metadata.resource_version, before.metadata.resource_version, "no revision was spent");
    assert_eq!(after.items, before.items);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contended_replaces_without_a_resource_version_all_land() {
    let server = Running::start(Settings::default()).await;
    let maps: Api<ConfigMap> = Api::default_namespaced(client(&server));
    maps.create(&PostParams::default(), &config_map("contended", &[], "0")).await.unwrap();
    // Replaces with no `resourceVersion` are retried inside the server for as long as
    // another write wins the race (Kubernetes' GuaranteedUpdate): never a 409.
    let writers = (0..8).map(|writer| {
        let maps = maps.clone();
        tokio::spawn(async move {
            for round in 0..25 {
                let map = config_map("contended", &[], &format!("{writer}-{round}"));
                maps.replace("contended", &PostParams::default(), &map).await.expect("a replace lands");
            }
        })
    });
    for writer in futures::future::join_all(writers).await {
        writer.unwrap();
    }
    let list = maps.list(&ListParams::default()).await.unwrap();
    let revision: u64 = list.metadata.resource_version.unwrap().parse().unwrap();
    assert_eq!(revision, 1 + 8 * 25, "every replace was one write");
    server.stop().await;
}
