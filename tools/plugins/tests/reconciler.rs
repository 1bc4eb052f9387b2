//! The reconciler end to end: a real directory, real inotify, and the test plugin as a
//! separate process serving the registration protocol over gRPC on its Unix socket. The
//! kubelet's reconciler tests (register, unregister, re-register) and what they miss
//! (no handler for a type, registration failing then retried, the notification failing,
//! stale sockets beside live ones). Waits are on events, with a failsafe against hangs.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use support::{Plugin, HANG};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use watchcache_plugins::desired::desired_state;
use watchcache_plugins::reconciler::{ActualState, Handler, Reconciler};
use watchcache_plugins::watcher::SocketDirWatcher;

/// A handler that reports every call, and refuses the first `fail_first` registrations.
struct Recording {
    calls: Mutex<UnboundedSender<String>>,
    fail_first: AtomicUsize,
}

impl Handler for Recording {
    fn validate(&self, _: &str, _: &Path, versions: &[String]) -> Result<(), String> {
        if versions.iter().any(|version| version == "v1") {
            Ok(())
        } else {
            Err("unsupported versions".into())
        }
    }

    fn register(&self, name: &str, _: &Path, _: &[String]) -> Result<(), String> {
        let refuse =
            self.fail_first.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        let _ = self
            .calls
            .lock()
            .unwrap()
            .send(format!("register {name}{}", if refuse { " (refused)" } else { "" }));
        if refuse {
            return Err("the handler is not ready".into());
        }
        Ok(())
    }

    fn deregister(&self, name: &str) {
        let _ = self.calls.lock().unwrap().send(format!("deregister {name}"));
    }
}

/// Runs `reconciler` on a task until the returned sender is used or dropped.
fn spawn_run(reconciler: Arc<Reconciler>) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        reconciler
            .run(async move {
                let _ = stopped.await;
            })
            .await
    });
    stop
}

struct Host {
    dir: PathBuf,
    calls: UnboundedReceiver<String>,
    actual: ActualState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _watcher: SocketDirWatcher,
}

impl Host {
    fn start(name: &str, fail_first: usize) -> Self {
        Self::start_with(name, fail_first, |_| {})
    }

    /// Starts a host on a fresh directory that `prepare` fills first.
    fn start_with(name: &str, fail_first: usize, prepare: impl FnOnce(&Path)) -> Self {
        let dir = std::env::temp_dir().join(format!("watchcache-reconciler-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        prepare(&dir);
        let (desired, writer) = desired_state();
        let watcher = SocketDirWatcher::start(&dir, writer).unwrap();
        let (sender, calls) = unbounded_channel();
        let handler = Recording { calls: Mutex::new(sender), fail_first: AtomicUsize::new(fail_first) };
        let handlers: HashMap<String, Arc<dyn Handler>> =
            HashMap::from([("example".to_owned(), Arc::new(handler) as _)]);
        let reconciler = Arc::new(Reconciler::new(desired, handlers));
        let actual = reconciler.actual();
        let stop = spawn_run(reconciler);
        Self { dir: dir.canonicalize().unwrap(), calls, actual, stop: Some(stop), _watcher: watcher }
    }

    async fn expect_call(&mut self, wanted: &str) {
        let call = tokio::time::timeout(HANG, self.calls.recv()).await.expect("a handler call").unwrap();
        assert_eq!(call, wanted);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_registers_unregisters_and_re_registers_when_re_created() {
    let mut host = Host::start("lifecycle", 0);
    let socket = host.dir.join("example.sock");
    let mut plugin = Plugin::start(&socket, &["--name", "foo"]);
    host.expect_call("register foo").await;
    plugin.expect("registered").await;
    let registered = host.actual.plugins();
    assert_eq!(registered.len(), 1);
    assert_eq!((registered[0].name.as_str(), &registered[0].endpoint), ("foo", &socket));

    // Re-created: the old registration goes before the new one comes.
    plugin.kill();
    let mut again = Plugin::start(&socket, &["--name", "foo"]);
    host.expect_call("deregister foo").await;
    host.expect_call("register foo").await;
    again.expect("registered").await;
    let identity = host.actual.plugins()[0].identity;
    assert!(identity > registered[0].identity, "a new identity: {identity} after {}", registered[0].identity);

    // Gone: unregistered.
    again.kill();
    std::fs::remove_file(&socket).unwrap();
    host.expect_call("deregister foo").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_with_no_handler_is_told_why() {
    let host = Host::start("no-handler", 0);
    let mut plugin = Plugin::start(&host.dir.join("odd.sock"), &["--type", "odd"]);
    plugin.expect("refused: no handler for plugin type \"odd\"").await;
    assert!(host.actual.plugins().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_registration_is_retried_after_its_backoff() {
    let mut host = Host::start("retried", 1);
    let mut plugin = Plugin::start(&host.dir.join("example.sock"), &["--name", "foo"]);
    host.expect_call("register foo (refused)").await;
    host.expect_call("deregister foo").await;
    plugin.expect("refused: the handler is not ready").await;
    host.expect_call("register foo").await;
    plugin.expect("registered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_notification_leaves_the_plugin_out_and_deregistered() {
    let mut host = Host::start("notify-fails", 0);
    let mut plugin = Plugin::start(&host.dir.join("example.sock"), &["--name", "foo", "--fail-notify"]);
    host.expect_call("register foo").await;
    plugin.expect("registered").await;
    // The notification failed: deregistered so that the retry is clean, and the retry
    // comes (and fails the same way).
    host.expect_call("deregister foo").await;
    host.expect_call("register foo").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_socket_does_not_hold_up_a_live_plugin() {
    // A socket file nobody listens on, as a crashed plugin leaves behind, there at start.
    let mut host = Host::start_with("stale", 0, |dir| {
        drop(std::os::unix::net::UnixListener::bind(dir.join("a-stale.sock")).unwrap());
    });
    let mut plugin = Plugin::start(&host.dir.join("b-live.sock"), &["--name", "live"]);
    host.expect_call("register live").await;
    plugin.expect("registered").await;
    let names: Vec<String> = host.actual.plugins().into_iter().map(|plugin| plugin.name).collect();
    assert_eq!(names, ["live"], "the stale socket backs off on its own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_plugins_by_type_and_operations() {
    let dir = std::env::temp_dir().join(format!("watchcache-reconciler-stats-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (desired, writer) = desired_state();
    let _watcher = SocketDirWatcher::start(&dir, writer).unwrap();
    let (sender, _calls) = unbounded_channel();
    let handler = Recording { calls: Mutex::new(sender), fail_first: AtomicUsize::new(0) };
    let handlers: HashMap<String, Arc<dyn Handler>> =
        HashMap::from([("example".to_owned(), Arc::new(handler) as _)]);
    let reconciler = Arc::new(Reconciler::new(desired, handlers));
    let stop = spawn_run(reconciler.clone());
    let mut plugin = Plugin::start(&dir.canonicalize().unwrap().join("example.sock"), &["--name", "counted"]);
    plugin.expect("registered").await;
    let stats = reconciler.stats();
    assert_eq!(stats.desired, 1);
    assert_eq!(stats.registered.get("example"), Some(&1));
    let operations = stats.operations;
    assert_eq!(operations.started, operations.failures + 1, "one registration succeeded: {operations:?}");
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_stalling_get_info_does_not_hold_up_another() {
    let mut host = Host::start("stalled", 0);
    // Longer than the 1 s GetInfo timeout: it fails, and backs off, on its own path.
    let _stalled =
        Plugin::start(&host.dir.join("a-stalled.sock"), &["--name", "slow", "--stall-get-info-ms", "5000"]);
    let mut live = Plugin::start(&host.dir.join("b-live.sock"), &["--name", "live"]);
    host.expect_call("register live").await;
    live.expect("registered").await;
    let names: Vec<String> = host.actual.plugins().into_iter().map(|plugin| plugin.name).collect();
    assert_eq!(names, ["live"]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_watch_that_expires_in_the_middle_of_reconciling_is_replaced_and_the_diff_completes() {
    use std::os::unix::fs::MetadataExt;
    use watchcache::{At, ListOptions};
    use watchcache_plugins::desired::desired_state_with_window;

    let dir = std::env::temp_dir().join(format!("watchcache-reconciler-expiry-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut plugins = Vec::new();
    for at in 0..3 {
        let mut plugin = Plugin::start(&dir.join(format!("p{at}.sock")), &["--name", &format!("p{at}")]);
        plugin.serving().await;
        plugins.push(plugin);
    }
    // The desired state keeps one change; the test writes it directly (no directory watcher).
    let (desired, mut writer) = desired_state_with_window(1);
    let (sender, _calls) = unbounded_channel();
    let handler = Recording { calls: Mutex::new(sender), fail_first: AtomicUsize::new(0) };
    let handlers: HashMap<String, Arc<dyn Handler>> =
        HashMap::from([("example".to_owned(), Arc::new(handler) as _)]);
    let reconciler = Arc::new(Reconciler::new(desired.clone(), handlers));
    let stop = spawn_run(reconciler.clone());
    // One thread runs this test and the reconciler: it runs only when the test yields.
    // Let it open its watches and wait in them.
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    // Three changes while it cannot read: its watch's place leaves the one-event window.
    for at in 0..3 {
        let path = dir.join(format!("p{at}.sock"));
        writer.add(&path, std::fs::metadata(&path).unwrap().ino());
    }
    desired.cacher().list(ListOptions::new().at(At::AtLeast(3))).unwrap();
    for plugin in &mut plugins {
        plugin.expect("registered").await;
    }
    let stats = reconciler.stats();
    assert_eq!(stats.registered.get("example"), Some(&3), "the diff completed");
    assert!(stats.watch_restarts >= 1, "the reconciler's watch expired and was replaced: {stats:?}");
    let _ = stop.send(());
}
