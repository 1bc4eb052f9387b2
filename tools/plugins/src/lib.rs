//! Plugin registration in the kubelet's style, on watchcache: a watcher on a socket
//! directory fills a *desired state of the world*; operations register and unregister
//! plugins one per socket at a time, with backoff, and records the result in an *actual
//! state of the world*.
//!
//! - [`watcher`]: the socket directory watcher (inotify through `notify`, not debounced);
//! - [`desired`]: the desired state, a [`watchcache::Cacher`] keyed by socket path, whose
//!   revisions are the plugins' identities (a re-created socket is a new plugin);
//! - [`reconciler`]: the [`Handler`](reconciler::Handler) trait, the actual state (also a
//!   `Cacher`) and the reconciler that diffs the two and starts operations;
//! - [`executor`]: at most one operation per key, exponential backoff per key;
//! - [`registration`]: the kubelet's registration protocol (`pluginregistration`), gRPC
//!   over the plugin's Unix socket;
//! - [`consumer`]: the `WatchConsumer` handler, which streams a cacher's events to a
//!   plugin's endpoint and resumes from the revision it acknowledged.
//!
//! Two binaries: `watchcache-plugin-host` (a host that registers `example` plugins and
//! prints them) and `watchcache-test-plugin` (a plugin serving the protocol, with options
//! to stall `GetInfo` and to fail the notification).

pub mod consumer;
pub mod desired;
pub mod executor;
pub mod reconciler;
pub mod registration;
pub mod watcher;
