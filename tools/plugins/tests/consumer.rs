//! A `WatchConsumer` plugin, as a separate process over real gRPC, killed in the middle of
//! a stream and restarted: across the restart it receives every event exactly once, in
//! order.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::Plugin;
use watchcache::Cacher;
use watchcache_plugins::consumer::{WatchConsumer, PLUGIN_TYPE};
use watchcache_plugins::desired::desired_state;
use watchcache_plugins::reconciler::{Handler, Reconciler};
use watchcache_plugins::watcher::SocketDirWatcher;

/// The test plugin as a `watch-consumer` of `k/` keys, logging to `log`.
fn start_consumer(socket: &Path, log: &Path) -> Plugin {
    let log = log.to_str().expect("a utf-8 path");
    Plugin::start(
        socket,
        &["--type", PLUGIN_TYPE, "--name", "consumer", "--prefix", "k/", "--consume-log", log],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_and_restarted_gets_every_event_exactly_once() {
    let dir = std::env::temp_dir().join(format!("watchcache-consumer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let log: PathBuf = std::env::temp_dir().join(format!("watchcache-consumer-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);

    let cacher: Cacher<String> = Cacher::builder().build();
    let producer = cacher.producer();
    let consumer = Arc::new(WatchConsumer::new(cacher.clone(), |value: &String| value.clone().into_bytes()));
    let (desired, writer) = desired_state();
    let _watcher = SocketDirWatcher::start(&dir, writer).unwrap();
    let handlers: HashMap<String, Arc<dyn Handler>> =
        HashMap::from([(PLUGIN_TYPE.to_owned(), consumer.clone() as _)]);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        Reconciler::new(desired, handlers)
            .run(async move {
                let _ = stopped.await;
            })
            .await
    });

    let socket = dir.join("consumer.sock");
    let mut first = start_consumer(&socket, &log);
    first.wait_for("registered").await;
    // Keys outside the prefix are not for this consumer.
    producer.put("other/x", "no".into()).unwrap();
    for at in 1..=200 {
        producer.put(format!("k/{at}"), format!("v{at}")).unwrap();
    }
    // Killed once it has some of them: the rest are in flight or not sent yet.
    first.wait_for("consumed 50").await;
    drop(first);
    for at in 201..=400 {
        producer.put(format!("k/{at}"), format!("v{at}")).unwrap();
    }
    let mut second = start_consumer(&socket, &log);

    // Revision 1 is the key outside the prefix; k/400 is revision 401.
    second.wait_for("consumed 401").await;

    let logged = std::fs::read_to_string(&log).unwrap();
    let revisions: Vec<u64> =
        logged.lines().map(|line| line.split_whitespace().next().unwrap().parse().unwrap()).collect();
    assert_eq!(revisions, (2..=401).collect::<Vec<u64>>(), "every event once, in order, across the restart");
    let _ = stop.send(());
}
