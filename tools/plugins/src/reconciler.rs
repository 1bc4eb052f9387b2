//! The actual state of the world, the handlers, and the reconciler that moves the actual
//! state towards the desired one, as the kubelet's plugin manager does.
//!
//! Each pass diffs the two states in full: a registered plugin whose socket is gone, or
//! whose identity (the desired state's revision for its path) changed, is unregistered;
//! a desired plugin not registered under its current identity is registered — after the
//! old one is unregistered, never beside it. Operations run on the
//! [`OperationExecutor`]: one per socket path at a
//! time, backing off per path after a failure, so a stale socket never delays another.
//!
//! Registering: dial the socket, `GetInfo`, find the handler for the plugin's type
//! (none: the plugin is told `plugin_registered = false` with the reason), validate,
//! register, record it in the actual state, and notify the plugin. When the registration
//! or the notification fails, the plugin is left out of the actual state and deregistered,
//! so the retry starts clean (a plugin that fails validation was never registered).

use crate::desired::DesiredState;
use crate::executor::{ExecutorStats, OperationExecutor};
use crate::registration::PluginClient;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use watchcache::{Cacher, ListOptions, Producer, Start, WatchOptions};

/// Registers plugins of one type.
pub trait Handler: Send + Sync + 'static {
    /// Whether a plugin called `name`, serving at `endpoint`, speaking `versions`, may
    /// register.
    ///
    /// # Errors
    /// Why not.
    fn validate(&self, name: &str, endpoint: &Path, versions: &[String]) -> Result<(), String>;

    /// Registers the plugin.
    ///
    /// # Errors
    /// Why it could not.
    fn register(&self, name: &str, endpoint: &Path, versions: &[String]) -> Result<(), String>;

    /// Unregisters the plugin (its socket is gone or was replaced).
    fn deregister(&self, name: &str);
}

/// A registered plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredPlugin {
    /// The socket it registered through.
    pub path: PathBuf,
    /// The desired state's revision it registered as.
    pub identity: u64,
    /// Its type (which handler holds it).
    pub plugin_type: String,
    /// Its name.
    pub name: String,
    /// Where its own service listens.
    pub endpoint: PathBuf,
}

/// Reads the actual state: a [`Cacher`] keyed by socket path. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ActualState {
    cacher: Cacher<RegisteredPlugin>,
}

impl ActualState {
    /// The cacher, to watch or list it.
    pub fn cacher(&self) -> &Cacher<RegisteredPlugin> {
        &self.cacher
    }

    /// Every registered plugin, in path order.
    pub fn plugins(&self) -> Vec<RegisteredPlugin> {
        match self.cacher.list(ListOptions::new()) {
            Ok(list) => list.items.iter().map(|(_, plugin)| (**plugin).clone()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

fn key(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// What the operations share.
struct Shared {
    handlers: HashMap<String, Arc<dyn Handler>>,
    actual: Producer<RegisteredPlugin>,
}

impl Shared {
    /// Records `plugin`, readable by the next pass once this returns.
    async fn record(&self, plugin: RegisteredPlugin) -> Result<(), String> {
        let path = plugin.path.clone();
        self.actual.put_if(key(&path), plugin, |_| true).await.map(drop).map_err(|error| error.to_string())
    }

    async fn forget(&self, path: &Path) {
        let _ = self.actual.delete_if(key(path), |_| true).await;
    }

    async fn register(&self, path: PathBuf, identity: u64) -> Result<(), String> {
        let mut client = PluginClient::dial(&path).await?;
        let info = client.get_info().await?;
        let Some(handler) = self.handlers.get(&info.r#type) else {
            let reason = format!("no handler for plugin type {:?}", info.r#type);
            let _ = client.notify(false, &reason).await;
            return Err(reason);
        };
        let endpoint = if info.endpoint.is_empty() { path.clone() } else { PathBuf::from(&info.endpoint) };
        let versions = &info.supported_versions;
        if let Err(reason) = handler.validate(&info.name, &endpoint, versions) {
            let _ = client.notify(false, &reason).await;
            return Err(reason);
        }
        if let Err(reason) = handler.register(&info.name, &endpoint, versions) {
            // Whatever the handler half did is undone: the retry is a clean one.
            handler.deregister(&info.name);
            let _ = client.notify(false, &reason).await;
            return Err(reason);
        }
        let plugin = RegisteredPlugin {
            path: path.clone(),
            identity,
            plugin_type: info.r#type.clone(),
            name: info.name.clone(),
            endpoint,
        };
        self.record(plugin).await?;
        if let Err(reason) = client.notify(true, "").await {
            // Out of the actual state and deregistered: the retry is a clean one.
            self.forget(&path).await;
            handler.deregister(&info.name);
            return Err(reason);
        }
        Ok(())
    }

    async fn unregister(&self, plugin: RegisteredPlugin) -> Result<(), String> {
        if let Some(handler) = self.handlers.get(&plugin.plugin_type) {
            handler.deregister(&plugin.name);
        }
        self.forget(&plugin.path).await;
        Ok(())
    }
}

/// What a reconciler has done; see [`Reconciler::stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginStats {
    /// Sockets in the desired state.
    pub desired: usize,
    /// Registered plugins by type.
    pub registered: BTreeMap<String, usize>,
    /// Operations started, failed, and refused (pending or backing off).
    pub operations: ExecutorStats,
    /// Times a watch on either state ended (expired, too slow) and was opened again.
    pub watch_restarts: u64,
}

/// How often the reconciler looks again with nothing changed (for retries after a
/// backoff).
const RESYNC: Duration = Duration::from_millis(100);

/// Moves the actual state towards the desired state.
pub struct Reconciler {
    desired: DesiredState,
    actual: ActualState,
    shared: Arc<Shared>,
    executor: OperationExecutor,
    /// Watches that ended and were opened again; a statistic only.
    watch_restarts: AtomicU64,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler").field("handlers", &self.shared.handlers.keys()).finish_non_exhaustive()
    }
}

impl Reconciler {
    /// A reconciler from `desired` to a new actual state, with a handler per plugin type.
    pub fn new(desired: DesiredState, handlers: HashMap<String, Arc<dyn Handler>>) -> Self {
        let cacher = Cacher::builder().build();
        let shared = Arc::new(Shared { handlers, actual: cacher.producer() });
        Self {
            desired,
            actual: ActualState { cacher },
            shared,
            executor: OperationExecutor::new(),
            watch_restarts: AtomicU64::new(0),
        }
    }

    /// The actual state it keeps.
    pub fn actual(&self) -> ActualState {
        self.actual.clone()
    }

    /// The executor running its operations.
    pub fn executor(&self) -> &OperationExecutor {
        &self.executor
    }

    /// Plugins desired and registered (by type), and the operations' counters.
    pub fn stats(&self) -> PluginStats {
        let mut registered = BTreeMap::new();
        for plugin in self.actual.plugins() {
            *registered.entry(plugin.plugin_type).or_insert(0) += 1;
        }
        PluginStats {
            desired: self.desired.plugins().len(),
            registered,
            operations: self.executor.stats(),
            watch_restarts: self.watch_restarts.load(Ordering::Relaxed),
        }
    }

    /// One pass: starts the operations the difference calls for (those already running
    /// or backing off for their path wait for a later pass).
    pub fn reconcile(&self) {
        let desired: HashMap<PathBuf, u64> =
            self.desired.plugins().into_iter().map(|plugin| (plugin.path, plugin.revision)).collect();
        let actual = self.actual.plugins();
        for plugin in &actual {
            if desired.get(&plugin.path) != Some(&plugin.identity) {
                let (shared, plugin) = (self.shared.clone(), plugin.clone());
                let _ =
                    self.executor.start(&key(&plugin.path), async move { shared.unregister(plugin).await });
            }
        }
        for (path, identity) in desired {
            // Registered under an older identity: unregistered above first.
            if actual.iter().any(|plugin| plugin.path == path) {
                continue;
            }
            let shared = self.shared.clone();
            let _ = self.executor.start(&key(&path), async move { shared.register(path, identity).await });
        }
    }

    /// Reconciles whenever either state changes (and every 100 ms while operations back
    /// off), until `stop` completes.
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let mut desired = self.desired.cacher().watch(WatchOptions::new().start(Start::Now)).ok();
        let mut actual = self.actual.cacher().watch(WatchOptions::new().start(Start::Now)).ok();
        loop {
            self.reconcile();
            tokio::select! {
                () = &mut stop => return,
                changed = next_change(&mut desired) => if !changed {
                    // Ended (expired, too slow): a fresh watch; the next pass diffs in full.
                    self.watch_restarts.fetch_add(1, Ordering::Relaxed);
                    desired = self.desired.cacher().watch(WatchOptions::new().start(Start::Now)).ok();
                },
                changed = next_change(&mut actual) => if !changed {
                    self.watch_restarts.fetch_add(1, Ordering::Relaxed);
                    actual = self.actual.cacher().watch(WatchOptions::new().start(Start::Now)).ok();
                },
                () = tokio::time::sleep(RESYNC) => {}
            }
        }
    }
}

/// Waits for the next change on `watch`: true for a change, false when it ended.
async fn next_change<T>(watch: &mut Option<watchcache::Watch<T>>) -> bool {
    use futures_util::StreamExt;
    match watch {
        Some(watch) => matches!(watch.next().await, Some(Ok(_))),
        None => std::future::pending().await,
    }
}
