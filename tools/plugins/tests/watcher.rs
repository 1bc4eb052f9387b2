//! The socket directory watcher on a real directory with real Unix sockets and real
//! inotify: the kubelet's plugin watcher tests, and what they miss. Every wait is on the
//! desired state's own watch (an event), never on time.

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;
use watchcache::{At, Event, ListOptions, RecvTimeoutError, Start, Watch, WatchOptions};
use watchcache_plugins::desired::{desired_state, DesiredPlugin, DesiredState};
use watchcache_plugins::watcher::SocketDirWatcher;

/// A failsafe: a hang fails the test instead of blocking CI.
const HANG: Duration = Duration::from_secs(30);

struct Fixture {
    dir: PathBuf,
    desired: DesiredState,
    events: Watch<DesiredPlugin>,
    _watcher: SocketDirWatcher,
    sockets: Vec<UnixListener>,
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("watchcache-plugins-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

impl Fixture {
    /// Starts a watcher on `dir` (which may not exist yet).
    fn start(dir: PathBuf) -> Self {
        let (desired, writer) = desired_state();
        let events = desired.cacher().watch(WatchOptions::new().start(Start::Revision(0))).unwrap();
        let watcher = SocketDirWatcher::start(&dir, writer).expect("the watcher starts");
        Self { dir, desired, events, _watcher: watcher, sockets: Vec::new() }
    }

    fn socket(&mut self, relative: &str) -> PathBuf {
        let path = self.dir.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        self.sockets.push(UnixListener::bind(&path).expect("a socket"));
        path
    }

    /// The next change to the desired state: (added, path, revision).
    fn next(&mut self) -> (bool, PathBuf, u64) {
        match self.events.recv_timeout(HANG) {
            Ok(Event::Added(entry) | Event::Modified(entry)) => {
                (true, entry.object().path.clone(), entry.revision())
            }
            Ok(Event::Deleted(entry)) => (false, entry.object().path.clone(), entry.revision()),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(RecvTimeoutError::Timeout) => panic!("no change to the desired state"),
            Err(other) => panic!("{other:?}"),
        }
    }

    fn expect_added(&mut self, path: &Path) -> u64 {
        let (added, seen, revision) = self.next();
        assert!(
            added && seen == path.canonicalize().unwrap(),
            "expected {path:?} added, got {seen:?} (added {added})"
        );
        revision
    }

    fn expect_removed(&mut self, path: &Path) -> u64 {
        let (added, seen, revision) = self.next();
        assert!(!added && seen.file_name() == path.file_name(), "expected {path:?} removed, got {seen:?}");
        revision
    }

    /// The desired plugins' paths as of `revision` (a watch can see an event before a
    /// list does).
    fn paths_at(&self, revision: u64) -> Vec<PathBuf> {
        let plugins = self.desired.cacher().list(ListOptions::new().at(At::AtLeast(revision))).unwrap().items;
        plugins.iter().map(|(_, plugin)| plugin.path.clone()).collect()
    }
}

#[test]
fn ten_plugins_in_turn_each_appear() {
    let mut fixture = Fixture::start(temp_dir("ten"));
    let mut last = 0;
    for at in 0..10 {
        let path = fixture.socket(&format!("plugin-{at}.sock"));
        last = fixture.expect_added(&path);
    }
    assert_eq!(fixture.paths_at(last).len(), 10);
}

#[test]
fn the_same_name_on_ten_paths_is_ten_plugins() {
    let mut fixture = Fixture::start(temp_dir("same-name"));
    let mut last = 0;
    for at in 0..10 {
        let path = fixture.socket(&format!("dir-{at}/plugin.sock"));
        last = fixture.expect_added(&path);
    }
    assert_eq!(fixture.paths_at(last).len(), 10);
}

#[test]
fn one_path_re_created_ten_times_is_ten_identities() {
    let mut fixture = Fixture::start(temp_dir("recreated"));
    let (mut identities, mut last) = (Vec::new(), 0);
    for _ in 0..10 {
        let path = fixture.socket("plugin.sock");
        identities.push(fixture.expect_added(&path));
        drop(fixture.sockets.pop());
        std::fs::remove_file(&path).unwrap();
        last = fixture.expect_removed(&path);
    }
    identities.dedup();
    assert_eq!(identities.len(), 10, "each re-creation is a new revision: {identities:?}");
    assert!(fixture.paths_at(last).is_empty());
}

#[test]
fn sockets_present_before_start_are_found_and_the_directory_is_created() {
    let dir = temp_dir("before");
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    let early: Vec<UnixListener> =
        ["a.sock", "nested/b.sock"].iter().map(|name| UnixListener::bind(dir.join(name)).unwrap()).collect();
    let mut fixture = Fixture::start(dir.clone());
    let mut seen = vec![fixture.next().1, fixture.next().1];
    seen.sort();
    let root = dir.canonicalize().unwrap();
    assert_eq!(seen, [root.join("a.sock"), root.join("nested/b.sock")]);
    drop(early);

    let missing = temp_dir("missing").join("deeper");
    let _created = Fixture::start(missing.clone());
    assert!(missing.is_dir(), "a missing plugin directory is created");
}

#[test]
fn nested_directories_at_depths_zero_to_two_are_watched() {
    let mut fixture = Fixture::start(temp_dir("nested"));
    for relative in ["top.sock", "one/a.sock", "one/two/b.sock"] {
        let path = fixture.socket(relative);
        fixture.expect_added(&path);
    }
    // A socket removed at depth 2 leaves too.
    let deep = fixture.dir.join("one/two/b.sock");
    std::fs::remove_file(&deep).unwrap();
    fixture.expect_removed(&deep);
}

#[test]
fn hidden_names_and_other_files_are_ignored() {
    let mut fixture = Fixture::start(temp_dir("ignored"));
    fixture.socket(".hidden.sock");
    fixture.socket(".hidden-dir/inside.sock");
    std::fs::write(fixture.dir.join("not-a-socket"), b"x").unwrap();
    // Events are handled in order: once this one is in, the ones before were ignored.
    let visible = fixture.socket("visible.sock");
    let revision = fixture.expect_added(&visible);
    assert_eq!(fixture.paths_at(revision), [visible.canonicalize().unwrap()]);
}

#[test]
fn a_socket_renamed_out_of_the_directory_is_removed() {
    let mut fixture = Fixture::start(temp_dir("renamed"));
    let path = fixture.socket("plugin.sock");
    fixture.expect_added(&path);
    let outside = temp_dir("renamed-outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::rename(&path, outside.join("plugin.sock")).unwrap();
    let revision = fixture.expect_removed(&path);
    assert!(fixture.paths_at(revision).is_empty());
}
