//! What a watch or a list asks for.

use crate::filter::{Filter, Predicate, TriggerFn};
use std::fmt;
use std::sync::Arc;

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Start {
    /// Live events only: everything after the cacher's revision when `watch` is called.
    #[default]
    Now,
    /// Every event after this revision, replayed from the window, then live. A revision
    /// not reached yet is waited for (see [`CacherBuilder::future_wait`](crate::CacherBuilder::future_wait)).
    Revision(u64),
    /// An `Added` event for every matching object at the current revision, then a
    /// bookmark with `initial_events_end: true`, then live.
    Snapshot,
}

/// Which state a list reflects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum At {
    /// The latest applied revision.
    #[default]
    Latest,
    /// At least this revision; waits for it like a watch from the future.
    AtLeast(u64),
    /// Exactly this revision: the latest state rolled back through the window. Older
    /// than the window is `ListError::Expired`; a revision not reached yet is waited for.
    Exact(u64),
}

/// What happens to a watch that does not keep up.
///
/// Every watch has a buffer (see [`WatchOptions::buffer`]). An indexed watch's buffer
/// holds the events the dispatcher pushed to it; an unindexed watch reads the window
/// itself, and its buffer size is the most events it may leave unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SlowWatcherPolicy {
    /// An indexed watch whose buffer is full is taken out of live dispatch at once; it
    /// catches up from the window by itself and rejoins. No watch is ever ended for being
    /// slow: it ends only if it falls out of the window (`Expired`).
    #[default]
    Park,
    /// The rule, for every watch: **a watch may have at most its buffer size of unread
    /// events that arrived after it started; when one more arrives, it is terminated.**
    /// It then yields the events it holds and ends with `TooSlow { resume_from }`, from
    /// which a new watch continues without loss. Events replayed from before the start
    /// (from `Start::Revision` or `Start::Snapshot`) do not count; a watch that never
    /// reads is held to the rule from its start. For an indexed watch the dispatcher
    /// first waits for room out of the shared dispatch budget (Kubernetes' behaviour);
    /// an unindexed watch reads the window on its own, so nothing waits for it and it is
    /// cut off at once. A revision is delivered whole or not at all: a watch full partway
    /// through one it was given part of is parked for the rest instead, and a relist's
    /// difference never ends a watch.
    Terminate,
}

/// The filter part of the options, before the cacher binds it to its trigger function.
struct FilterSpec<T> {
    prefix: Arc<str>,
    trigger: Option<Arc<str>>,
    predicate: Option<Predicate<T>>,
}

impl<T> Default for FilterSpec<T> {
    fn default() -> Self {
        Self { prefix: Arc::from(""), trigger: None, predicate: None }
    }
}

impl<T> Clone for FilterSpec<T> {
    fn clone(&self) -> Self {
        Self { prefix: self.prefix.clone(), trigger: self.trigger.clone(), predicate: self.predicate.clone() }
    }
}

impl<T> FilterSpec<T> {
    fn bind(&self, trigger_fn: Option<&TriggerFn<T>>) -> Result<Filter<T>, &'static str> {
        let trigger = match (&self.trigger, trigger_fn) {
            (None, _) => None,
            (Some(value), Some(trigger_fn)) => Some((value.clone(), trigger_fn.clone())),
            (Some(_), None) => return Err("a trigger value needs a cacher built with a trigger function"),
        };
        Ok(Filter::new(self.prefix.clone(), trigger, self.predicate.clone()))
    }
}

impl<T> fmt::Debug for FilterSpec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("prefix", &self.prefix)
            .field("trigger", &self.trigger)
            .field("predicate", &self.predicate.as_ref().map(|_| ".."))
            .finish()
    }
}

/// The filter setters [`WatchOptions`] and [`ListOptions`] share; each states its own
/// docs for the trigger and the predicate.
macro_rules! filter_setters {
    (trigger: $trigger_doc:literal, predicate: $predicate_doc:literal) => {
        /// Only keys that start with `prefix`.
        pub fn prefix(mut self, prefix: impl Into<Arc<str>>) -> Self {
            self.filter.prefix = prefix.into();
            self
        }

        #[doc = $trigger_doc]
        pub fn trigger(mut self, value: impl Into<Arc<str>>) -> Self {
            self.filter.trigger = Some(value.into());
            self
        }

        #[doc = $predicate_doc]
        pub fn predicate(mut self, predicate: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
            self.filter.predicate = Some(Arc::new(predicate));
            self
        }
    };
}

/// Options of one watch: its filter, where it starts, bookmarks and its buffer.
///
/// ```
/// use watchcache::{Start, WatchOptions};
///
/// let options = WatchOptions::<String>::new()
///     .prefix("pods/default/")
///     .predicate(|pod: &String| !pod.is_empty())
///     .start(Start::Revision(42))
///     .bookmarks(true);
/// # let _ = options;
/// ```
pub struct WatchOptions<T> {
    filter: FilterSpec<T>,
    pub(crate) start: Start,
    pub(crate) bookmarks: bool,
    pub(crate) buffer: Option<usize>,
}

impl<T> WatchOptions<T> {
    /// Every object, live from now, no bookmarks, the default buffer.
    pub fn new() -> Self {
        Self { filter: FilterSpec::default(), start: Start::Now, bookmarks: false, buffer: None }
    }

    filter_setters! {
        trigger: "Only objects whose trigger value is `value`; the watch is indexed under it.",
        predicate: "Only objects for which `predicate` holds. It runs on the watch's own thread for \
                    replayed and unindexed events, on the dispatcher for indexed ones: keep it cheap."
    }

    /// Where the watch starts (default [`Start::Now`]).
    pub fn start(mut self, start: Start) -> Self {
        self.start = start;
        self
    }

    /// Whether to receive periodic bookmarks (default off).
    pub fn bookmarks(mut self, on: bool) -> Self {
        self.bookmarks = on;
        self
    }

    /// The most events buffered for this watch (default by kind: 10 for trigger-indexed
    /// watches, 1000 for unindexed ones on an indexed cacher, 100 otherwise).
    pub fn buffer(mut self, events: usize) -> Self {
        self.buffer = Some(events);
        self
    }

    pub(crate) fn wants_trigger(&self) -> bool {
        self.filter.trigger.is_some()
    }

    pub(crate) fn bind(&self, trigger_fn: Option<&TriggerFn<T>>) -> Result<Filter<T>, &'static str> {
        self.filter.bind(trigger_fn)
    }
}

impl<T> Default for WatchOptions<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for WatchOptions<T> {
    fn clone(&self) -> Self {
        Self {
            filter: self.filter.clone(),
            start: self.start,
            bookmarks: self.bookmarks,
            buffer: self.buffer,
        }
    }
}

impl<T> fmt::Debug for WatchOptions<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchOptions")
            .field("filter", &self.filter)
            .field("start", &self.start)
            .field("bookmarks", &self.bookmarks)
            .field("buffer", &self.buffer)
            .finish()
    }
}

/// Options of one list: its filter and the revision it must reflect.
pub struct ListOptions<T> {
    filter: FilterSpec<T>,
    pub(crate) at: At,
    pub(crate) after: Option<Arc<str>>,
    pub(crate) limit: usize,
}

impl<T> ListOptions<T> {
    /// Every object at the latest revision.
    pub fn new() -> Self {
        Self { filter: FilterSpec::default(), at: At::Latest, after: None, limit: usize::MAX }
    }

    filter_setters! {
        trigger: "Only objects whose trigger value is `value`.",
        predicate: "Only objects for which `predicate` holds."
    }

    /// Which revision the list must reflect (default [`At::Latest`]).
    pub fn at(mut self, at: At) -> Self {
        self.at = at;
        self
    }

    /// Only keys after `key` (in key order): where the previous page of a paginated list
    /// ended. Pair it with [`At::Exact`] at the first page's revision for pages of one
    /// consistent state.
    pub fn after(mut self, key: impl Into<Arc<str>>) -> Self {
        self.after = Some(key.into());
        self
    }

    /// At most `objects` objects (the first ones in key order).
    pub fn limit(mut self, objects: usize) -> Self {
        self.limit = objects;
        self
    }

    pub(crate) fn prefix_str(&self) -> &str {
        &self.filter.prefix
    }

    pub(crate) fn bind(&self, trigger_fn: Option<&TriggerFn<T>>) -> Result<Filter<T>, &'static str> {
        self.filter.bind(trigger_fn)
    }
}

impl<T> Default for ListOptions<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for ListOptions<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListOptions")
            .field("filter", &self.filter)
            .field("at", &self.at)
            .field("after", &self.after)
            .field("limit", &self.limit)
            .finish()
    }
}
