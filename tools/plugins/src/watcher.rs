//! The socket directory watcher: fills the desired state from a directory of plugin
//! sockets, as the kubelet's plugin watcher does.
//!
//! - The directory is created if missing. Its (recursive, inotify) watch is added
//!   *before* the directory is walked, so nothing created during start-up is missed; a
//!   socket seen by both the walk and an event is one plugin (same inode).
//! - Sub-directories are walked and watched. A directory created later gets its watch
//!   added by the handler (not left to the inotify layer's own timing) before it is
//!   walked, so a socket made in it right after it was made is seen by one or the other.
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
use std::sync::{mpsc, Arc, Mutex, PoisonError};
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
    /// Taken out and dropped first: closing its event channel ends the handling thread.
    watcher: Arc<Mutex<Option<RecommendedWatcher>>>,
    thread: Option<JoinHandle<()>>,
}

impl SocketDirWatcher {
    /// Creates `dir` if missing, watches it, adds the sockets already in it, and keeps
    /// `writer`'s desired state up to date from then on.
    ///
    /// # Errors
    /// The directory cannot be created, or inotify refuses the watch.
    pub fn start(dir: &Path, writer: DesiredStateWriter) -> Result<Self, WatchDirError> {
        std::fs::create_dir_all(dir).map_err(WatchDirError::Io)?;
        let root = dir.canonicalize().map_err(WatchDirError::Io)?;
        let (events, received) = mpsc::channel::<notify::Result<Event>>();
        let mut watcher = notify::recommended_watcher(events).map_err(WatchDirError::Notify)?;
        watcher.watch(&root, RecursiveMode::Recursive).map_err(WatchDirError::Notify)?;
        let watcher = Arc::new(Mutex::new(Some(watcher)));
        let mut handler = Handler { root: root.clone(), writer, watcher: watcher.clone() };
        handler.walk(&root);
        let thread = std::thread::Builder::new()
            .name("plugin-dir-watcher".into())
            .spawn(move || {
                for event in received {
                    match event {
                        Ok(event) => handler.handle(&event),
                        Err(error) => tracing::warn!(%error, "plugin directory watch error"),
                    }
                }
            })
            .map_err(WatchDirError::Io)?;
        Ok(Self { watcher, thread: Some(thread) })
    }
}

impl Drop for SocketDirWatcher {
    fn drop(&mut self) {
        drop(self.watcher.lock().unwrap_or_else(PoisonError::into_inner).take());
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

/// Turns events into desired-state changes; owned by the handling thread.
struct Handler {
    root: PathBuf,
    writer: DesiredStateWriter,
    /// To add a new directory's watch before walking it.
    watcher: Arc<Mutex<Option<RecommendedWatcher>>>,
}

impl Handler {
    /// Adds the socket at `path`, or watches and walks it if it is a directory.
    fn found(&mut self, path: &Path) {
        if hidden(&self.root, path) {
            return;
        }
        let Ok(metadata) = std::fs::symlink_metadata(path) else { return };
        if metadata.is_dir() {
            if path != self.root {
                if let Some(watcher) = self.watcher.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
                    if let Err(error) = watcher.watch(path, RecursiveMode::Recursive) {
                        tracing::warn!(path = %path.display(), %error, "cannot watch a plugin sub-directory");
                    }
                }
            }
            self.walk(path);
        } else if metadata.file_type().is_socket() {
            if self.writer.add(path, metadata.ino()) {
                tracing::debug!(path = %path.display(), "plugin socket added");
            }
        } else {
            tracing::debug!(path = %path.display(), "not a socket; ignored");
        }
    }

    /// Adds every socket under `dir`, at any depth.
    fn walk(&mut self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            self.found(&entry.path());
        }
    }

    fn handle(&mut self, event: &Event) {
        let paths: &[PathBuf] = &event.paths;
        match event.kind {
            EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                paths.iter().for_each(|path| self.found(path));
            }
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                paths.iter().for_each(|path| self.writer.remove(path));
            }
            // Sent after the `From` and `To` halves of the same rename, already handled.
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {}
            // A rename notify could not pair: what exists now is there, the rest is gone.
            EventKind::Modify(ModifyKind::Name(_)) => {
                for path in paths {
                    if path.exists() {
                        self.found(path);
                    } else {
                        self.writer.remove(path);
                    }
                }
            }
            _ => {}
        }
    }
}
