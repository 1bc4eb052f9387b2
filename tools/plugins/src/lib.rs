//! Plugin registration in the kubelet's style, on watchcache: a watcher on a socket
//! directory fills a *desired state of the world*; operations register and unregister
//! plugins one per socket at a time, with backoff.
//!
//! This crate has, so far:
//! - [`desired`]: the desired state, a [`watchcache::Cacher`] keyed by socket path, whose
//!   revisions are the plugins' identities (a re-created socket is a new plugin);
//! - [`watcher`]: the socket directory watcher (inotify through `notify`, not debounced);
//! - [`executor`]: at most one operation per key, exponential backoff per key.

pub mod desired;
pub mod executor;
pub mod watcher;
