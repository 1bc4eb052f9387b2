//! The filter shared by watches and lists: key prefix, trigger value, predicate, and the
//! per-watcher transition table it decides; and the trigger tags that let a watcher for
//! one trigger value pass over the window's records of other values.

use crate::event::{EventRef, Record};
use std::hash::BuildHasher;
use std::sync::Arc;

/// The cacher's trigger function, shared by the dispatcher and every filter.
pub(crate) type TriggerFn<T> = Arc<dyn for<'a> Fn(&'a T) -> Option<&'a str> + Send + Sync>;
/// A watch's or list's own test of an object.
pub(crate) type Predicate<T> = Arc<dyn Fn(&T) -> bool + Send + Sync>;

/// The trigger values of a record's new and previous objects, each hashed to a 16-bit tag.
///
/// A pushed watcher reads the window itself while it catches up after a park and while it
/// replays up to its join position; records of other trigger values are most of what it
/// reads there (99% of them when each event matches 1% of the watchers). Its tag lets it
/// pass over those with two compares, where the filter would call the trigger function
/// twice and compare strings. Equal tags only say "perhaps": the filter then checks the
/// value itself, so a collision costs that check, never an event. Two `u16`s fit in a
/// record's padding: a record stays 64 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TriggerTags {
    /// The new object's tag: [`NO_VALUE`] when it is absent or has no trigger value, 0
    /// when the tags were not computed.
    new: u16,
    /// The previous object's, in the same form.
    prev: u16,
}

/// The tag of an absent object or of one without a trigger value: even, so never a
/// value's tag, and not 0.
const NO_VALUE: u16 = 2;

impl TriggerTags {
    /// Not computed: the record may concern any watcher. The dispatcher computes tags only
    /// while it has pushed watchers, so a cacher without any pays nothing for them.
    pub(crate) const UNKNOWN: Self = Self { new: 0, prev: 0 };

    /// The tags of a record whose new and previous objects have these trigger values.
    pub(crate) fn of(new: Option<&str>, prev: Option<&str>) -> Self {
        let tag_of = |value: Option<&str>| value.map_or(NO_VALUE, tag);
        Self { new: tag_of(new), prev: tag_of(prev) }
    }

    /// Whether the record may concern a watcher whose trigger value has tag `wanted`.
    fn may_concern(self, wanted: u16) -> bool {
        self == Self::UNKNOWN || self.new == wanted || self.prev == wanted
    }
}

/// A trigger value's tag: 16 bits of its FxHash, made odd, so neither [`NO_VALUE`] nor
/// unknown. FxHash rather than a keyed hash: the tag is a hint checked against the value,
/// so values an adversary chose to collide cost only that check.
fn tag(value: &str) -> u16 {
    (rustc_hash::FxBuildHasher.hash_one(value) >> 48) as u16 | 1
}

/// A watch's trigger value, its tag, and the cacher's trigger function.
struct Trigger<T> {
    value: Arc<str>,
    tag: u16,
    function: TriggerFn<T>,
}

impl<T> Trigger<T> {
    /// Whether `object`'s trigger value is the one asked for.
    fn matches(&self, object: &T) -> bool {
        (self.function)(object) == Some(&*self.value)
    }
}

impl<T> Clone for Trigger<T> {
    fn clone(&self) -> Self {
        Self { value: self.value.clone(), tag: self.tag, function: self.function.clone() }
    }
}

/// The filter shared by watches and lists: key prefix, trigger value, predicate.
pub(crate) struct Filter<T> {
    prefix: Arc<str>,
    trigger: Option<Trigger<T>>,
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
        let trigger = trigger.map(|(value, function)| Trigger { tag: tag(&value), value, function });
        Self { prefix, trigger, predicate }
    }

    /// The trigger value this filter asks for, shared: the trigger index keys on it.
    pub(crate) fn trigger_value(&self) -> Option<&Arc<str>> {
        self.trigger.as_ref().map(|trigger| &trigger.value)
    }

    pub(crate) fn matches_key(&self, key: &str) -> bool {
        // Most watches have no prefix; skip the comparison call for them.
        self.prefix.is_empty() || key.starts_with(&*self.prefix)
    }

    pub(crate) fn matches_object(&self, object: &T) -> bool {
        self.trigger.as_ref().is_none_or(|trigger| trigger.matches(object)) && self.passes_predicate(object)
    }

    fn passes_predicate(&self, object: &T) -> bool {
        self.predicate.as_ref().is_none_or(|predicate| predicate(object))
    }

    pub(crate) fn matches(&self, key: &str, object: &T) -> bool {
        self.matches_key(key) && self.matches_object(object)
    }

    /// What a watcher with this filter sees of `record`.
    // Inlined into the replay loop, as `Record::event_for` is (see there). `always`: with
    // the trigger tags' arm the compiler's own choice left it out of line, a call per
    // record that cost 5–7% of `visit` at 10 unfiltered watchers.
    #[inline(always)]
    pub(crate) fn event<'r>(&self, record: &'r Record<T>) -> Option<EventRef<'r, T>> {
        if !self.matches_key(&record.key) {
            return None;
        }
        // The trigger looked at once per record, not again for each of its two objects.
        match &self.trigger {
            None => record.event_for(|object| self.passes_predicate(object)),
            Some(trigger) if !record.triggers.may_concern(trigger.tag) => None,
            Some(trigger) => {
                record.event_for(|object| trigger.matches(object) && self.passes_predicate(object))
            }
        }
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
        let wanted = self.trigger_value().map(|value| &**value);
        let passes = |object: &T| self.passes_predicate(object);
        let new_matches = new_value == wanted && record.object.as_deref().is_some_and(passes);
        let prev_matches = prev_value == wanted && record.prev.as_deref().is_some_and(passes);
        record.transition(new_matches, prev_matches)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::event::Origin;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A filter for objects whose trigger value is `value` (the object itself), and how
    /// many times it called the trigger function.
    fn counting_filter(value: &str) -> (Filter<String>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let function: TriggerFn<String> = Arc::new(move |object: &String| {
            counted.fetch_add(1, Ordering::Relaxed);
            Some(object.as_str())
        });
        (Filter::new(Arc::from(""), Some((Arc::from(value), function)), None), calls)
    }

    /// A record adding `object`, tagged as the dispatcher tags it.
    fn tagged(object: &str) -> Record<String> {
        let mut record = Record::new(
            (1, 0),
            Arc::from("key"),
            (Some(Arc::new(object.to_string())), None),
            (Origin::Change, true),
            Duration::ZERO,
        );
        record.triggers = TriggerTags::of(Some(object), None);
        record
    }

    /// Two distinct values whose tags are equal (15 bits: a few hundred values suffice).
    fn colliding_values() -> (String, String) {
        let mut seen = HashMap::new();
        (0..)
            .map(|index| format!("node-{index}"))
            .find_map(|value| seen.insert(tag(&value), value.clone()).map(|earlier| (earlier, value)))
            .expect("tags are 15 bits")
    }

    #[test]
    fn a_record_of_another_value_is_passed_over_without_calling_the_trigger_function() {
        let (filter, calls) = counting_filter("node-1");
        let other =
            (2..).map(|index| format!("node-{index}")).find(|value| tag(value) != tag("node-1")).unwrap();
        assert!(filter.event(&tagged(&other)).is_none());
        assert_eq!(calls.load(Ordering::Relaxed), 0);
        assert!(filter.event(&tagged("node-1")).is_some());
    }

    #[test]
    fn equal_tags_of_different_values_fall_back_to_the_value() {
        let (wanted, colliding) = colliding_values();
        let (filter, calls) = counting_filter(&wanted);
        assert!(filter.event(&tagged(&colliding)).is_none());
        assert!(calls.load(Ordering::Relaxed) > 0, "the value was checked");
        assert!(filter.event(&tagged(&wanted)).is_some());
    }

    #[test]
    fn untagged_records_and_previous_objects_are_checked_by_value() {
        let (filter, _) = counting_filter("node-1");
        let mut untagged = tagged("node-1");
        untagged.triggers = TriggerTags::UNKNOWN;
        assert!(filter.event(&untagged).is_some());
        // Moved off the value: the previous object's tag concerns the watcher.
        let mut moved = Record::new(
            (2, 1),
            Arc::from("key"),
            (Some(Arc::new("node-2".to_string())), Some(Arc::new("node-1".to_string()))),
            (Origin::Change, true),
            Duration::ZERO,
        );
        moved.triggers = TriggerTags::of(Some("node-2"), Some("node-1"));
        assert!(matches!(filter.event(&moved), Some(EventRef::Deleted { .. })));
    }

    #[test]
    fn no_value_never_concerns_a_watcher() {
        let none = TriggerTags::of(None, None);
        assert!((0..1000).all(|index| !none.may_concern(tag(&format!("value-{index}")))));
        assert!(TriggerTags::UNKNOWN.may_concern(tag("anything")));
    }
}
