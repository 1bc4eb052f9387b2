//! The socket directory watcher: fills the desired state from a directory of plugin
//! sockets, as the kubelet's plugin watcher does.
//!
//! - The directory is created if missing. Its (recursive, inotify) watch is added
//!   *before* the directory is walked, so nothing created during start-up is missed; a
//!   socket seen by both the walk and an event is one plugin (same inode).
//! - Sub-directories are walked and watched (a directory created later is walked when
//!   its creation is seen, for sockets made in it before its watch existed).
//! - Unix sockets only; names starting with `.` are ignored, and so is everything under
//!   such a directory; other files are ignored with a debug log.
//! - A removed path leaves the desired state whatever it was (it can no longer be
//!   looked at); so does a socket renamed out of the directory.
//! - Events are not debounced: a quick delete and re-create is two events, and the new
//!   socket is a new plugin.

use crate::desired::DesiredStateWriter;
use notify::event::{ModifyKind, RenameMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Why the watcher could not start.
#[derive(Debug)]
pub enum WatchDirError {
    /// The directory could not be created or read.
    Io(std::io::Error),
    /// The inotify watch could not be set up.
    Notify(notify::Error),
}

impl std::fmt::Display for WatchDirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(error) => write!(f, "cannot use the plugin directory: {error}"),
            Self::Notify(error) => write!(f, "cannot watch the plugin directory: {error}"),
        }
    }
}

impl std::error::Error for WatchDirError {}

/// Watches a plugin directory until dropped.
#[derive(Debug)]
pub struct SocketDirWatcher {
    /// Dropped first: closing its event channel ends the handling thread.
    watcher: Option<RecommendedWatcher>,
    thread: Option<JoinHandle<()>>,
}

impl SocketDirWatcher {
    /// Creates `dir` if missing, watches it, adds the sockets already in it, and keeps
    /// `writer`'s desired state up to date from then on.
    ///
    /// # Errors
    /// The directory cannot be created, or inotify refuses the watch.
    pub fn start(dir: &Path, mut writer: DesiredStateWriter) -> Result<Self, WatchDirError> {
        std::fs::create_dir_all(dir).map_err(WatchDirError::Io)?;
        let root = dir.canonicalize().map_err(WatchDirError::Io)?;
        let (events, received) = mpsc::channel::<notify::Result<Event>>();
        let mut watcher = notify::recommended_watcher(events).map_err(WatchDirError::Notify)?;
        watcher.watch(&root, RecursiveMode::Recursive).map_err(WatchDirError::Notify)?;
        walk(&root, &root, &mut writer);
        let thread = std::thread::Builder::new()
            .name("plugin-dir-watcher".into())
            .spawn(move || {
                for event in received {
                    match event {
                        Ok(event) => handle(&root, &event, &mut writer),
                        Err(error) => tracing::warn!(%error, "plugin directory watch error"),
                    }
                }
            })
            .map_err(WatchDirError::Io)?;
        Ok(Self { watcher: Some(watcher), thread: Some(thread) })
    }
}

impl Drop for SocketDirWatcher {
    fn drop(&mut self) {
        drop(self.watcher.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether `path` is hidden: a name under `root` that starts with `.`.
fn hidden(root: &Path, path: &Path) -> bool {
    path.strip_prefix(root)
        .map(|relative| relative.components().any(|part| part.as_os_str().to_string_lossy().starts_with('.')))
        .unwrap_or(true)
}

/// Adds the socket at `path`, or walks it if it is a directory.
fn found(root: &Path, path: &Path, writer: &mut DesiredStateWriter) {
    if hidden(root, path) {
        return;
    }
    let Ok(metadata) = std::fs::symlink_metadata(path) else { return };
    if metadata.is_dir() {
        walk(root, path, writer);
    } else if metadata.file_type().is_socket() {
        if writer.add(path, metadata.ino()) {
            tracing::debug!(path = %path.display(), "plugin socket added");
        }
    } else {
        tracing::debug!(path = %path.display(), "not a socket; ignored");
    }
}

/// Adds every socket under `dir`, at any depth.
fn walk(root: &Path, dir: &Path, writer: &mut DesiredStateWriter) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        found(root, &entry.path(), writer);
    }
}

fn handle(root: &Path, event: &Event, writer: &mut DesiredStateWriter) {
    let paths: &[PathBuf] = &event.paths;
    match event.kind {
        EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
            paths.iter().for_each(|path| found(root, path, writer));
        }
        EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
            paths.iter().for_each(|path| writer.remove(path));
        }
        // Sent after the `From` and `To` halves of the same rename, already handled.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {}
        // A rename notify could not pair: what exists now is there, the rest is gone.
        EventKind::Modify(ModifyKind::Name(_)) => {
            for path in paths {
                if path.exists() {
                    found(root, path, writer);
                } else {
                    writer.remove(path);
                }
            }
        }
        _ => {}
    }
}
