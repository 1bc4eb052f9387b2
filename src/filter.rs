//! The filter shared by watches and lists: key prefix, trigger value, predicate, and the
//! per-watcher transition table it decides.

use crate::event::{EventRef, Record};
use std::sync::Arc;

/// The cacher's trigger function, shared by the dispatcher and every filter.
pub(crate) type TriggerFn<T> = Arc<dyn for<'a> Fn(&'a T) -> Option<&'a str> + Send + Sync>;
/// A watch's or list's own test of an object.
pub(crate) type Predicate<T> = Arc<dyn Fn(&T) -> bool + Send + Sync>;

/// The filter shared by watches and lists: key prefix, trigger value, predicate.
pub(crate) struct Filter<T> {
    prefix: Arc<str>,
    trigger: Option<(Arc<str>, TriggerFn<T>)>,
    predicate: Option<Predicate<T>>,
}

impl<T> Clone for Filter<T> {
    fn clone(&self) -> Self {
        Self { prefix: self.prefix.clone(), trigger: self.trigger.clone(), predicate: self.predicate.clone() }
    }
}

impl<T> Filter<T> {
    pub(crate) fn new(
        prefix: Arc<str>,
        trigger: Option<(Arc<str>, TriggerFn<T>)>,
        predicate: Option<Predicate<T>>,
    ) -> Self {
        Self { prefix, trigger, predicate }
    }

    pub(crate) fn trigger_value(&self) -> Option<&str> {
        self.trigger.as_ref().map(|(value, _)| &**value)
    }

    pub(crate) fn matches_key(&self, key: &str) -> bool {
        // Most watches have no prefix; skip the comparison call for them.
        self.prefix.is_empty() || key.starts_with(&*self.prefix)
    }

    pub(crate) fn matches_object(&self, object: &T) -> bool {
        self.trigger.as_ref().is_none_or(|(value, trigger)| trigger(object) == Some(&**value))
            && self.passes_predicate(object)
    }

    fn passes_predicate(&self, object: &T) -> bool {
        self.predicate.as_ref().is_none_or(|predicate| predicate(object))
    }

    pub(crate) fn matches(&self, key: &str, object: &T) -> bool {
        self.matches_key(key) && self.matches_object(object)
    }

    /// What a watcher with this filter sees of `record`.
    // Inlined into the replay loop, as `Record::event_for` is (see there).
    #[inline]
    pub(crate) fn event<'r>(&self, record: &'r Record<T>) -> Option<EventRef<'r, T>> {
        if !self.matches_key(&record.key) {
            return None;
        }
        record.event_for(|object| self.matches_object(object))
    }

    /// [`Self::event`] for a watcher the trigger index selected, given the trigger values
    /// of the record's new and previous objects, which the dispatcher computed once for
    /// every candidate: the trigger function is not called again per watcher.
    pub(crate) fn indexed_event<'r>(
        &self,
        record: &'r Record<T>,
        (new_value, prev_value): (Option<&str>, Option<&str>),
    ) -> Option<EventRef<'r, T>> {
        if !self.matches_key(&record.key) {
            return None;
        }
        let wanted = self.trigger_value();
        let passes = |object: &T| self.passes_predicate(object);
        let new_matches = new_value == wanted && record.object.as_deref().is_some_and(passes);
        let prev_matches = prev_value == wanted && record.prev.as_deref().is_some_and(passes);
        record.transition(new_matches, prev_matches)
    }
}
