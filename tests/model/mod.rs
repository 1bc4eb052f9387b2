//! The reference model: the watch cache's semantics as a plain, sequential program.
//!
//! A log of applied changes and the state they produce; what a watch with a given
//! filter must see after a given revision is computed straight from the transition
//! table, with no concurrency, buffering or windows. In upstream mode the log takes the
//! upstream's revisions (sparse, several changes at one), progress moves the revision
//! with no change, and a relist enters the difference from the model's state to the
//! upstream's as changes at the relist's revision, in key order; the revisions it
//! passed over are a gap whose state is unknown.
#![allow(dead_code, unreachable_pub)]

pub mod driver;

use std::collections::BTreeMap;
use watchcache::{Event, TryRecvError, Watch, WatchError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obj {
    pub node: String,
    pub value: u32,
}

#[derive(Debug, Clone)]
pub struct FilterSpec {
    pub prefix: &'static str,
    pub trigger: Option<String>,
    pub even_only: bool,
}

impl FilterSpec {
    /// Every key and object.
    pub fn everything() -> Self {
        Self { prefix: "", trigger: None, even_only: false }
    }

    fn matches_object(&self, object: &Obj) -> bool {
        self.trigger.as_ref().is_none_or(|node| *node == object.node)
            && (!self.even_only || object.value % 2 == 0)
    }

    pub fn matches(&self, key: &str, object: &Obj) -> bool {
        key.starts_with(self.prefix) && self.matches_object(object)
    }
}

/// What a watcher sees: kind, key, revision and the object's value.
pub type Seen = (&'static str, String, u64, u32);

struct Change {
    revision: u64,
    key: String,
    new: Option<Obj>,
    prev: Option<Obj>,
}

/// A log of changes, rebuilt from any source of them.
#[derive(Default)]
pub struct Model {
    /// The state the log starts from (an upstream's initial load).
    initial: BTreeMap<String, Obj>,
    log: Vec<Change>,
    state: BTreeMap<String, Obj>,
    revision: u64,
    /// Relists' gaps: `(from, to)`, the revisions strictly between unknown.
    gaps: Vec<(u64, u64)>,
}

impl Model {
    /// An upstream model loaded with `state` at `revision` (nothing before it is known).
    pub fn loaded(revision: u64, state: &BTreeMap<String, Obj>) -> Self {
        Self { initial: state.clone(), state: state.clone(), revision, ..Self::default() }
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The key's object now.
    pub fn current(&self, key: &str) -> Option<&Obj> {
        self.state.get(key)
    }

    /// Every key's object now.
    pub fn state(&self) -> &BTreeMap<String, Obj> {
        &self.state
    }

    /// Embedded mode: a put at the next revision.
    pub fn put(&mut self, key: &str, object: Obj) {
        let revision = self.revision + 1;
        self.change(revision, key, Some(object));
        self.revision = revision;
    }

    /// Embedded mode: a delete at the next revision; a missing key takes none.
    pub fn delete(&mut self, key: &str) {
        let revision = self.revision + 1;
        if self.change(revision, key, None) {
            self.revision = revision;
        }
    }

    /// Upstream mode: `changes` at `revision` (a delete of a missing key changes nothing).
    pub fn apply(&mut self, revision: u64, changes: &[(String, Option<Obj>)]) {
        assert!(revision > self.revision);
        for (key, object) in changes {
            self.change(revision, key, object.clone());
        }
        self.revision = revision;
    }

    /// Upstream mode: nothing more up to `revision`.
    pub fn progress(&mut self, revision: u64) {
        self.revision = self.revision.max(revision);
    }

    /// Upstream mode: the upstream's whole `state` at `revision`, entered as the
    /// difference from the model's state, in key order.
    pub fn relist(&mut self, revision: u64, state: &BTreeMap<String, Obj>) {
        let keys: std::collections::BTreeSet<String> =
            self.state.keys().chain(state.keys()).cloned().collect();
        for key in keys {
            let new = state.get(&key);
            if new != self.state.get(&key) {
                self.change(revision, &key, new.cloned());
            }
        }
        if revision > self.revision + 1 {
            self.gaps.push((self.revision, revision));
        }
        self.revision = revision;
    }

    /// Whether the state at `revision` is known: not inside a relist's gap.
    pub fn known_at(&self, revision: u64) -> bool {
        !self.gaps.iter().any(|(from, to)| revision > *from && revision < *to)
    }

    /// Logs one change; false for a delete of a missing key, which logs nothing.
    fn change(&mut self, revision: u64, key: &str, new: Option<Obj>) -> bool {
        let prev = match &new {
            Some(object) => self.state.insert(key.to_string(), object.clone()),
            None => self.state.remove(key),
        };
        if new.is_none() && prev.is_none() {
            return false;
        }
        self.log.push(Change { revision, key: key.to_string(), new, prev });
        true
    }

    /// The matching objects at `revision`, in key order (for a revision inside a
    /// relist's gap: at the gap's start, as the cacher saw it).
    pub fn state_at(&self, revision: u64, filter: &FilterSpec) -> Vec<(String, u32)> {
        let mut state = self.initial.clone();
        for change in self.log.iter().take_while(|change| change.revision <= revision) {
            match &change.new {
                Some(object) => state.insert(change.key.clone(), object.clone()),
                None => state.remove(&change.key),
            };
        }
        state
            .into_iter()
            .filter(|(key, object)| filter.matches(key, object))
            .map(|(key, object)| (key, object.value))
            .collect()
    }

    /// Every event a watch with `filter` must see after `revision`, in order; none yet
    /// for a revision not reached.
    pub fn events_after(&self, revision: u64, filter: &FilterSpec) -> Vec<Seen> {
        self.log
            .iter()
            .filter(|change| change.revision > revision)
            .filter(|change| change.key.starts_with(filter.prefix))
            .filter_map(|change| {
                let new = change.new.as_ref().filter(|object| filter.matches_object(object));
                let prev = change.prev.as_ref().filter(|object| filter.matches_object(object));
                let (kind, object) = match (new, prev) {
                    (Some(object), None) => ("added", object),
                    (Some(object), Some(_)) => ("modified", object),
                    (None, Some(object)) => ("deleted", object),
                    (None, None) => return None,
                };
                Some((kind, change.key.clone(), change.revision, object.value))
            })
            .collect()
    }
}

/// One engine watch and what the model says about it.
pub struct Tracked {
    pub watch: Watch<Obj>,
    pub filter: FilterSpec,
    /// The revision it starts after; for a snapshot start, learned from its marker.
    start: Option<u64>,
    snapshot: bool,
    pub seen: Vec<Seen>,
    initial: Vec<(String, u32)>,
    pub end: Option<WatchError>,
}

impl Tracked {
    /// Tracks `watch`, which starts after `start` (`None`: a snapshot start).
    pub fn new(watch: Watch<Obj>, filter: FilterSpec, start: Option<u64>) -> Self {
        Self {
            watch,
            filter,
            snapshot: start.is_none(),
            start,
            seen: Vec::new(),
            initial: Vec::new(),
            end: None,
        }
    }

    /// Takes one item if one is ready; false when nothing is ready or the watch has
    /// already ended.
    pub fn try_take(&mut self) -> bool {
        if self.end.is_some() {
            assert_eq!(
                self.watch.try_recv().err(),
                self.end.clone().map(TryRecvError::Ended),
                "the end repeats"
            );
            return false;
        }
        match self.watch.try_recv() {
            Ok(event) => self.record(Ok(event)),
            Err(TryRecvError::Ended(reason)) => self.record(Err(reason)),
            Err(TryRecvError::Empty) => return false,
        }
        true
    }

    /// Takes up to `limit` ready items in one batch (`try_visit`); false when nothing was
    /// ready or the watch has already ended.
    pub fn try_take_batch(&mut self, limit: usize) -> bool {
        let mut batch = Vec::new();
        let outcome = self.watch.try_visit(limit, |event| batch.push(event.to_owned()));
        batch.into_iter().for_each(|event| self.record(Ok(event)));
        match outcome {
            Ok(visited) => {
                assert!((1..=limit).contains(&visited), "visited {visited} of at most {limit}");
                true
            }
            Err(TryRecvError::Empty) => false,
            Err(TryRecvError::Ended(reason)) => {
                let first = self.end.is_none();
                if first {
                    self.record(Err(reason));
                }
                first
            }
        }
    }

    pub fn record(&mut self, item: Result<Event<Obj>, WatchError>) {
        match item {
            Ok(Event::Bookmark { revision, initial_events_end: true }) => {
                assert!(self.snapshot && self.start.is_none(), "one marker, only for a snapshot start");
                self.start = Some(revision);
            }
            Ok(Event::Bookmark { .. }) => panic!("bookmarks were not asked for"),
            Ok(event) if self.snapshot && self.start.is_none() => {
                assert!(matches!(event, Event::Added { .. }), "initial events are additions");
                self.initial.push((event.key().unwrap().to_string(), event.object().unwrap().value));
            }
            Ok(event) => {
                let kind = match event {
                    Event::Added { .. } => "added",
                    Event::Modified { .. } => "modified",
                    _ => "deleted",
                };
                let value = event.object().unwrap().value;
                self.seen.push((kind, event.key().unwrap().to_string(), event.revision(), value));
            }
            Err(error) => self.end = Some(error),
        }
    }

    /// Checks the stream against the model: a gap-free, duplicate-free prefix of what the
    /// model expects, complete up to the end's resume point.
    pub fn check(&self, model: &Model, finished: bool) {
        let Some(start) = self.start else {
            assert!(!finished || self.end.is_some(), "a snapshot watch that never ended its initial events");
            return;
        };
        if self.snapshot {
            assert_eq!(self.initial, model.state_at(start, &self.filter), "snapshot at {start}");
        }
        let expected = model.events_after(start, &self.filter);
        // `revision()` says every matching event up to it was yielded, whatever the watch
        // has read ahead.
        let claimed = self.watch.revision();
        let owed_by_claim = expected.iter().take_while(|seen| seen.2 <= claimed).count();
        assert!(
            self.seen.len() >= owed_by_claim,
            "revision() is {claimed}, but only {:?} of {:?} were yielded",
            self.seen,
            expected
        );
        assert!(
            expected.starts_with(&self.seen),
            "stream {:?}\nis not a prefix of {:?}",
            self.seen,
            expected
        );
        let complete_up_to = match &self.end {
            Some(WatchError::Closed) => model.revision(),
            Some(WatchError::TooSlow { resume_from }) => *resume_from,
            Some(WatchError::Expired { requested, oldest }) => {
                assert!(oldest > requested, "expired only when the window moved past");
                *requested
            }
            Some(other) => panic!("unexpected end {other:?}"),
            None => {
                assert!(!finished, "every watch ends after shutdown");
                return;
            }
        };
        let owed: Vec<_> = expected.iter().filter(|seen| seen.2 <= complete_up_to).cloned().collect();
        // A watch that expires partway through a revision has yielded part of it: the rest
        // was evicted before it got there. Only `Expired` may end so (it means "list
        // again"); every other end falls between revisions.
        let partial = match &self.end {
            Some(WatchError::Expired { .. }) if self.seen.len() > owed.len() => &self.seen[owed.len()..],
            _ => &[],
        };
        assert!(
            partial.iter().all(|seen| seen.2 == partial[0].2),
            "expired after more than one revision: {:?} then {partial:?} ({:?})",
            owed,
            self.end
        );
        assert_eq!(
            self.seen[..self.seen.len() - partial.len()],
            owed,
            "complete up to {complete_up_to} ({:?})",
            self.end
        );
    }
}

impl Model {
    /// Rebuilds the log from a complete, gap-free event stream (as an unfiltered watch
    /// from revision 0 yields it).
    pub fn from_events(events: &[Event<Obj>]) -> Self {
        let mut model = Self::default();
        for event in events {
            assert_eq!(event.revision(), model.revision() + 1, "a complete log has no gap");
            match event {
                Event::Deleted(entry) => model.delete(entry.key()),
                Event::Added(entry) | Event::Modified(entry) => {
                    model.put(entry.key(), (**entry.object()).clone())
                }
                Event::Bookmark { .. } => unreachable!("no bookmarks in a log"),
            }
        }
        model
    }
}

/// An upstream writing to a cacher, and the model of what the cacher was told: the
/// upstream's own state goes on changing while its watch is broken, and the next relist
/// brings the cacher (and the model) to it.
pub struct UpstreamWriter {
    handle: watchcache::Upstream<Obj>,
    truth: BTreeMap<String, Obj>,
    broken: bool,
    revision: u64,
    pub model: Model,
}

impl UpstreamWriter {
    /// Loads `handle`'s cacher, empty, at `revision`.
    pub fn loaded(mut handle: watchcache::Upstream<Obj>, revision: u64) -> Self {
        let truth = BTreeMap::new();
        handle.relist(revision, truth.clone()).unwrap();
        Self { handle, model: Model::loaded(revision, &truth), truth, broken: false, revision }
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// `changes` (to distinct keys) at a revision `skip` after the next one; the cacher
    /// sees them unless the watch is broken.
    pub fn apply(&mut self, skip: u64, changes: Vec<(String, Option<Obj>)>) {
        self.revision += 1 + skip;
        for (key, object) in &changes {
            match object {
                Some(object) => self.truth.insert(key.clone(), object.clone()),
                None => self.truth.remove(key),
            };
        }
        if !self.broken {
            self.model.apply(self.revision, &changes);
            let changes = changes.into_iter().map(|(key, object)| match object {
                Some(object) => watchcache::Change::put(key, object),
                None => watchcache::Change::delete(key),
            });
            self.handle.apply(self.revision, changes).unwrap();
        }
    }

    /// Progress `skip` revisions on (unseen while broken).
    pub fn progress(&mut self, skip: u64) {
        self.revision += skip;
        if !self.broken {
            self.model.progress(self.revision);
            self.handle.progress(self.revision).unwrap();
        }
    }

    /// The upstream's watch breaks: the cacher misses changes until the next relist.
    pub fn break_watch(&mut self) {
        self.broken = true;
    }

    /// The whole state, `skip` revisions on; ends a break.
    pub fn relist(&mut self, skip: u64) {
        self.revision += skip;
        self.broken = false;
        self.model.relist(self.revision, &self.truth);
        self.handle.relist(self.revision, self.truth.clone()).unwrap();
    }
}
