//! The reference model: the watch cache's semantics as a plain, sequential program.
//!
//! A log of applied changes and the state they produce; what a watch with a given
//! filter must see after a given revision is computed straight from the transition
//! table, with no concurrency, buffering or windows.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;

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
    fn matches_object(&self, object: &Obj) -> bool {
        self.trigger.as_ref().is_none_or(|node| *node == object.node) && (!self.even_only || object.value % 2 == 0)
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

#[derive(Default)]
pub struct Model {
    log: Vec<Change>,
    state: BTreeMap<String, Obj>,
}

impl Model {
    pub fn revision(&self) -> u64 {
        self.log.len() as u64
    }

    pub fn put(&mut self, key: &str, object: Obj) {
        let prev = self.state.insert(key.to_string(), object.clone());
        let revision = self.revision() + 1;
        self.log.push(Change { revision, key: key.to_string(), new: Some(object), prev });
    }

    pub fn delete(&mut self, key: &str) {
        if let Some(prev) = self.state.remove(key) {
            let revision = self.revision() + 1;
            self.log.push(Change { revision, key: key.to_string(), new: None, prev: Some(prev) });
        }
    }

    /// The matching objects at `revision`, in key order.
    pub fn state_at(&self, revision: u64, filter: &FilterSpec) -> Vec<(String, u32)> {
        let mut state = BTreeMap::new();
        for change in &self.log[..revision as usize] {
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

    /// Every event a watch with `filter` must see after `revision`, in order.
    pub fn events_after(&self, revision: u64, filter: &FilterSpec) -> Vec<Seen> {
        self.log[revision as usize..]
            .iter()
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
