//! A `WatchConsumer` plugin, as a separate process over real gRPC, killed in the middle of
//! a stream and restarted: across the restart it receives every event exactly once, in
//! order.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use watchcache::Cacher;
use watchcache_plugins::consumer::{WatchConsumer, PLUGIN_TYPE};
use watchcache_plugins::desired::desired_state;
use watchcache_plugins::reconciler::{Handler, Reconciler};
use watchcache_plugins::watcher::SocketDirWatcher;

/// A failsafe: a hang fails the test instead of blocking CI.
const HANG: Duration = Duration::from_secs(30);

struct Plugin {
    child: Child,
    lines: UnboundedReceiver<String>,
}

impl Plugin {
    fn start(socket: &Path, log: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_watchcache-test-plugin"))
            .arg("--socket")
            .arg(socket)
            .args(["--type", PLUGIN_TYPE, "--name", "consumer", "--prefix", "k/", "--consume-log"])
            .arg(log)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Waits for the line `wanted`, skipping others.
    async fn wait_for(&mut self, wanted: &str) {
        tokio::time::timeout(HANG, async {
            while let Some(line) = self.lines.recv().await {
                if line == wanted {
                    return;
                }
            }
            panic!("the plugin exited before printing {wanted:?}");
        })
        .await
        .unwrap_or_else(|_| panic!("the plugin never printed {wanted:?}"));
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let mut first = Plugin::start(&socket, &log);
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
    let mut second = Plugin::start(&socket, &log);

    // Revision 1 is the key outside the prefix; k/400 is revision 401.
    second.wait_for("consumed 401").await;

    let logged = std::fs::read_to_string(&log).unwrap();
    let revisions: Vec<u64> =
        logged.lines().map(|line| line.split_whitespace().next().unwrap().parse().unwrap()).collect();
    assert_eq!(revisions, (2..=401).collect::<Vec<u64>>(), "every event once, in order, across the restart");
    assert!(consumer.acknowledged("consumer") <= 401);
    let _ = stop.send(());
}
