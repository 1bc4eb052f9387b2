//! The desired state of the world: every plugin socket seen in the directory, as a
//! [`watchcache::Cacher`] keyed by socket path.
//!
//! A plugin's identity is the revision that last wrote its path (stamped into the entry
//! by the cacher): each re-creation of a socket is a new revision, so a reconciler
//! re-registers it with no clock and no UUID — equal timestamps once hid
//! re-registrations in the kubelet, which then moved to UUIDs.
//!
//! One writer ([`DesiredStateWriter`], held by the directory watcher) and any number of
//! readers ([`DesiredState`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use watchcache::{Cacher, ListOptions, Producer};

/// One socket in the plugin directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredPlugin {
    /// The socket's path.
    pub path: PathBuf,
    /// The socket file's inode: the same file seen twice (by the start-up walk and by an
    /// event) is one plugin; a new file at the same path is a new one.
    pub inode: u64,
    /// The plugin's identity: the revision that added it.
    pub revision: u64,
}

/// Reads the desired state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DesiredState {
    cacher: Cacher<DesiredPlugin>,
}

/// Changes the desired state; one per directory watcher (not `Clone`). Being the only
/// writer, it knows what it has written without reading the cacher back.
#[derive(Debug)]
pub struct DesiredStateWriter {
    producer: Producer<DesiredPlugin>,
    /// Each path written and its file's inode.
    written: HashMap<PathBuf, u64>,
}

/// A new, empty desired state and its one writer.
pub fn desired_state() -> (DesiredState, DesiredStateWriter) {
    build(Cacher::builder())
}

/// [`desired_state`] whose window keeps only `events` changes (the cacher's default
/// grows from 100): readers that fall further behind see `Expired` and start over.
pub fn desired_state_with_window(events: usize) -> (DesiredState, DesiredStateWriter) {
    build(Cacher::builder().window_capacity(events))
}

fn build(builder: watchcache::CacherBuilder<DesiredPlugin>) -> (DesiredState, DesiredStateWriter) {
    let cacher =
        builder.stamp_revision(|plugin: &mut DesiredPlugin, revision| plugin.revision = revision).build();
    let writer = DesiredStateWriter { producer: cacher.producer(), written: HashMap::new() };
    (DesiredState { cacher }, writer)
}

fn key(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

impl DesiredState {
    /// The cacher, to watch or list it.
    pub fn cacher(&self) -> &Cacher<DesiredPlugin> {
        &self.cacher
    }

    /// Every plugin, in path order.
    pub fn plugins(&self) -> Vec<DesiredPlugin> {
        match self.cacher.list(ListOptions::new()) {
            Ok(list) => list.items.iter().map(|(_, plugin)| (**plugin).clone()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The plugin at `path`, if any.
    pub fn get(&self, path: &Path) -> Option<DesiredPlugin> {
        self.cacher.get(&key(path)).ok()?.0.map(|plugin| (*plugin).clone())
    }
}

impl DesiredStateWriter {
    /// Adds the socket at `path` (file `inode`), or re-adds it as a new plugin when a
    /// different file is there now; the same file seen again changes nothing. Returns
    /// whether it was added.
    pub fn add(&mut self, path: &Path, inode: u64) -> bool {
        if self.written.get(path) == Some(&inode) {
            return false;
        }
        let plugin = DesiredPlugin { path: path.to_owned(), inode, revision: 0 };
        if self.producer.put(key(path), plugin).is_err() {
            return false;
        }
        self.written.insert(path.to_owned(), inode);
        true
    }

    /// Removes the socket at `path`, and everything under it when it was a directory;
    /// nothing if none is there.
    pub fn remove(&mut self, path: &Path) {
        let gone: Vec<PathBuf> =
            self.written.keys().filter(|known| known.starts_with(path)).cloned().collect();
        for known in gone {
            self.written.remove(&known);
            let _ = self.producer.delete(key(&known));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use watchcache::At;

    fn at(desired: &DesiredState, revision: u64) -> Vec<(PathBuf, u64, u64)> {
        let plugins = desired.cacher.list(ListOptions::new().at(At::AtLeast(revision))).unwrap().items;
        plugins.iter().map(|(_, plugin)| (plugin.path.clone(), plugin.inode, plugin.revision)).collect()
    }

    #[test]
    fn add_update_and_remove_as_the_kubelets_desired_state() {
        let (desired, mut writer) = desired_state();
        let a = Path::new("/plugins/a.sock");
        assert!(writer.add(a, 7));
        assert!(!writer.add(a, 7), "the same file seen again is the same plugin");
        assert_eq!(at(&desired, 1), [(a.to_owned(), 7, 1)]);
        assert!(writer.add(a, 8), "a new file at the path is an update");
        assert_eq!(at(&desired, 2), [(a.to_owned(), 8, 2)], "with a new identity");
        writer.remove(a);
        assert!(at(&desired, 3).is_empty());
        writer.remove(a);
        assert_eq!(desired.cacher.stats().revision, 3, "removing a missing path changes nothing");
    }

    #[test]
    fn removing_a_directory_removes_every_socket_under_it() {
        let (desired, mut writer) = desired_state();
        for path in ["/p/d/a.sock", "/p/d/e/b.sock", "/p/dd.sock"] {
            writer.add(Path::new(path), 1);
        }
        writer.remove(Path::new("/p/d"));
        let left: Vec<PathBuf> = at(&desired, 5).into_iter().map(|(path, ..)| path).collect();
        assert_eq!(left, [PathBuf::from("/p/dd.sock")], "a sibling with a longer name stays");
    }
}
