//! The trigger index: pushed watchers grouped by the trigger value they asked for.
//!
//! An event is offered to the watchers under the trigger values of its new and its
//! previous object (so an object moving off value A reaches A's watchers as a
//! `Deleted`); the cost per event is the number of watchers under those values, not the
//! number of watchers. As in the Kubernetes cacher's `indexedWatchers`, watchers without
//! a trigger value are kept elsewhere: here they pull from the window.

use crate::hand_off::WatcherShared;
use crate::sync::Arc;
use std::collections::HashMap;

pub(crate) struct Index<T> {
    by_trigger: HashMap<std::sync::Arc<str>, Vec<Arc<WatcherShared<T>>>>,
    len: usize,
}

impl<T> Index<T> {
    pub(crate) fn new() -> Self {
        Self { by_trigger: HashMap::new(), len: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds `watcher` under its trigger value; a watcher without one is not indexed.
    pub(crate) fn insert(&mut self, watcher: Arc<WatcherShared<T>>) {
        if let Some(value) = watcher.filter.trigger_value() {
            self.by_trigger.entry(value.clone()).or_default().push(watcher);
            self.len += 1;
        }
    }

    /// Removes `watcher` if it is indexed; returns whether it was.
    pub(crate) fn remove(&mut self, watcher: &Arc<WatcherShared<T>>) -> bool {
        let Some(value) = watcher.filter.trigger_value() else { return false };
        let Some(watchers) = self.by_trigger.get_mut(&**value) else { return false };
        let Some(position) = watchers.iter().position(|indexed| Arc::ptr_eq(indexed, watcher)) else {
            return false;
        };
        watchers.swap_remove(position);
        if watchers.is_empty() {
            self.by_trigger.remove(&**value);
        }
        self.len -= 1;
        true
    }

    /// The watchers an event with these trigger values may concern, each once.
    pub(crate) fn candidates<'a>(
        &'a self,
        new: Option<&str>,
        prev: Option<&str>,
    ) -> impl Iterator<Item = &'a Arc<WatcherShared<T>>> + 'a {
        let prev = prev.filter(|prev| Some(*prev) != new);
        let under =
            |value: Option<&str>| value.and_then(|value| self.by_trigger.get(value)).into_iter().flatten();
        under(new).chain(under(prev))
    }

    /// Every indexed watcher.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<WatcherShared<T>>> {
        self.by_trigger.values().flatten()
    }
}
