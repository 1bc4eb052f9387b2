//! What the soak checks against, and the checks.
//!
//! The truth is every write as it landed: its key, its revision and the value it left
//! (`None`: deleted). In memory it comes from the writers' acknowledgements (the server
//! is never killed there, so every write is answered); on etcd from etcd's own watch,
//! read beside the server, and every acknowledgement is checked against it.
//!
//! A watcher is checked as a reflector is used: its view starts from a list and follows
//! its events, across every resume, and at every revision boundary (an event at a newer
//! revision, or a bookmark) the view must equal the truth's state at that revision for
//! its selector. That one rule finds a gap, a duplicate, an event out of order, a wrong
//! value, and a relist's difference that does not add up; it holds for exact history and
//! for the net difference across a relist alike.

use std::collections::BTreeMap;

/// A value's label: the parity of its counter (`w3-17` is odd), so objects move in and
/// out of a `parity=even` selection as they change.
pub(crate) fn is_even(value: &str) -> bool {
    value
        .rsplit('-')
        .next()
        .and_then(|counter| counter.parse::<u64>().ok())
        .is_some_and(|counter| counter % 2 == 0)
}

/// What a watcher or list selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selection {
    All,
    Even,
}

impl Selection {
    pub(crate) fn label_selector(self) -> Option<&'static str> {
        match self {
            Self::All => None,
            Self::Even => Some("parity=even"),
        }
    }

    fn selects(self, value: &str) -> bool {
        self == Self::All || is_even(value)
    }
}

/// Every write as it landed, per key in revision order.
#[derive(Debug, Default)]
pub(crate) struct Truth {
    keys: BTreeMap<String, Vec<(u64, Option<String>)>>,
    /// The newest revision recorded.
    pub(crate) revision: u64,
}

pub(crate) type State = BTreeMap<String, String>;

impl Truth {
    /// Records that `key` became `value` at `revision`; a second record of the same write
    /// must agree with the first.
    pub(crate) fn record(&mut self, key: &str, revision: u64, value: Option<String>) -> Result<(), String> {
        let history = self.keys.entry(key.to_owned()).or_default();
        let at = history.partition_point(|(landed, _)| *landed < revision);
        match history.get(at) {
            Some((landed, known)) if *landed == revision => {
                if *known != value {
                    return Err(format!("{key} at {revision}: recorded {known:?}, now {value:?}"));
                }
            }
            _ => history.insert(at, (revision, value)),
        }
        self.revision = self.revision.max(revision);
        Ok(())
    }

    /// What `key` held at `revision`.
    fn value_at(&self, key: &str, revision: u64) -> Option<&str> {
        let history = self.keys.get(key)?;
        let at = history.partition_point(|(landed, _)| *landed <= revision);
        history[..at].last()?.1.as_deref()
    }

    /// The last `count` writes to `key`, oldest first.
    pub(crate) fn recent(&self, key: &str, count: usize) -> Vec<(u64, Option<String>)> {
        let history = self.keys.get(key).map_or(&[][..], Vec::as_slice);
        history[history.len().saturating_sub(count)..].to_vec()
    }

    /// Whether exactly this write is recorded: `key` became `value` at `revision`.
    pub(crate) fn has(&self, key: &str, revision: u64, value: Option<&str>) -> bool {
        self.keys.get(key).is_some_and(|history| {
            history.iter().any(|(landed, known)| *landed == revision && known.as_deref() == value)
        })
    }

    /// The state at `revision` that `selection` selects.
    pub(crate) fn state_at(&self, revision: u64, selection: Selection) -> State {
        self.keys
            .keys()
            .filter_map(|key| {
                let value = self.value_at(key, revision)?;
                selection.selects(value).then(|| (key.clone(), value.to_owned()))
            })
            .collect()
    }
}

/// What a watcher saw, in order.
#[derive(Debug, Clone)]
pub(crate) enum Seen {
    /// A complete (paged) list at `revision`: the view starts again from it.
    Listed {
        revision: u64,
        items: State,
    },
    Added {
        key: String,
        revision: u64,
        value: String,
    },
    Modified {
        key: String,
        revision: u64,
        value: String,
    },
    Deleted {
        key: String,
        revision: u64,
    },
    Bookmark {
        revision: u64,
    },
}

impl Seen {
    pub(crate) fn revision(&self) -> u64 {
        match self {
            Self::Listed { revision, .. }
            | Self::Added { revision, .. }
            | Self::Modified { revision, .. }
            | Self::Deleted { revision, .. }
            | Self::Bookmark { revision } => *revision,
        }
    }
}

/// One watcher's view, checked entry by entry.
#[derive(Debug)]
pub(crate) struct StreamCheck {
    selection: Selection,
    view: State,
    /// The revision of the last entry applied; the view is complete for it once an
    /// entry of a newer revision arrives.
    at: Option<u64>,
    /// Revision boundaries checked so far.
    pub(crate) boundaries: u64,
}

impl StreamCheck {
    pub(crate) fn new(selection: Selection) -> Self {
        Self { selection, view: State::new(), at: None, boundaries: 0 }
    }

    fn check_boundary(&mut self, truth: &Truth, revision: u64) -> Result<(), String> {
        self.boundaries += 1;
        let expected = truth.state_at(revision, self.selection);
        if self.view == expected {
            return Ok(());
        }
        let missing: Vec<_> =
            expected.iter().filter(|(key, value)| self.view.get(*key) != Some(value)).take(3).collect();
        let extra: Vec<_> =
            self.view.iter().filter(|(key, value)| expected.get(*key) != Some(value)).take(3).collect();
        Err(format!(
            "{:?} view at revision {revision} differs from what was written: expected {missing:?}, has {extra:?}",
            self.selection
        ))
    }

    /// Takes the truth's state at `revision` as the view, after a violation, so that one
    /// wrong entry is reported once rather than at every boundary after it.
    pub(crate) fn resync(&mut self, truth: &Truth, revision: u64) {
        self.view = truth.state_at(revision, self.selection);
        self.at = Some(revision);
    }

    /// Applies one entry; `truth` holds every write up to its revision.
    pub(crate) fn apply(&mut self, truth: &Truth, seen: Seen) -> Result<(), String> {
        let revision = seen.revision();
        if let Seen::Listed { items, .. } = seen {
            self.view = items;
            self.at = Some(revision);
            return self.check_boundary(truth, revision);
        }
        let Some(at) = self.at else { return Err(format!("an event at {revision} before any list")) };
        if revision < at {
            return Err(format!("{seen:?} after an entry at revision {at}"));
        }
        if revision > at {
            self.check_boundary(truth, at)?;
            self.at = Some(revision);
        }
        match seen {
            Seen::Added { key, value, .. } => {
                if let Some(held) = self.view.insert(key.clone(), value) {
                    return Err(format!("ADDED {key} at {revision}, which the view holds as {held:?}"));
                }
            }
            Seen::Modified { key, value, .. } => {
                if self.view.insert(key.clone(), value).is_none() {
                    return Err(format!("MODIFIED {key} at {revision}, which the view does not hold"));
                }
            }
            Seen::Deleted { key, .. } => {
                if self.view.remove(&key).is_none() {
                    return Err(format!("DELETED {key} at {revision}, which the view does not hold"));
                }
            }
            Seen::Bookmark { .. } => self.check_boundary(truth, revision)?,
            Seen::Listed { .. } => unreachable!("handled above"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth() -> Truth {
        let mut truth = Truth::default();
        truth.record("a", 2, Some("w0-1".into())).unwrap();
        truth.record("b", 3, Some("w0-2".into())).unwrap();
        truth.record("a", 5, Some("w0-4".into())).unwrap();
        truth.record("b", 7, None).unwrap();
        truth
    }

    fn added(key: &str, revision: u64, value: &str) -> Seen {
        Seen::Added { key: key.into(), revision, value: value.into() }
    }

    #[test]
    fn an_exact_history_passes_and_a_gap_or_a_duplicate_does_not() {
        let truth = truth();
        let exact = [
            Seen::Listed { revision: 1, items: State::new() },
            added("a", 2, "w0-1"),
            added("b", 3, "w0-2"),
            Seen::Modified { key: "a".into(), revision: 5, value: "w0-4".into() },
            Seen::Deleted { key: "b".into(), revision: 7 },
            Seen::Bookmark { revision: 9 },
        ];
        let mut check = StreamCheck::new(Selection::All);
        for seen in exact.clone() {
            check.apply(&truth, seen).unwrap();
        }
        assert_eq!(check.boundaries, 7, "each revision left, and the bookmark");

        let mut gap = StreamCheck::new(Selection::All);
        let result: Result<(), String> =
            [exact[0].clone(), exact[1].clone(), exact[3].clone(), exact[5].clone()]
                .into_iter()
                .try_for_each(|seen| gap.apply(&truth, seen));
        assert!(result.is_err(), "b's creation was skipped");

        let mut duplicate = StreamCheck::new(Selection::All);
        let result: Result<(), String> = [exact[0].clone(), exact[1].clone(), exact[1].clone()]
            .into_iter()
            .try_for_each(|seen| duplicate.apply(&truth, seen));
        assert!(result.is_err());
    }

    #[test]
    fn a_net_difference_at_one_revision_passes() {
        let truth = truth();
        let mut check = StreamCheck::new(Selection::All);
        check
            .apply(&truth, Seen::Listed { revision: 2, items: State::from([("a".into(), "w0-1".into())]) })
            .unwrap();
        // A relist at 7: a changed, b came and went, all at one revision.
        check.apply(&truth, Seen::Modified { key: "a".into(), revision: 7, value: "w0-4".into() }).unwrap();
        check.apply(&truth, Seen::Bookmark { revision: 8 }).unwrap();
    }

    #[test]
    fn a_selection_follows_the_label() {
        let mut truth = truth();
        assert_eq!(truth.state_at(3, Selection::Even), State::from([("b".into(), "w0-2".into())]));
        assert_eq!(
            truth.state_at(5, Selection::Even),
            State::from([("a".into(), "w0-4".into()), ("b".into(), "w0-2".into())])
        );
        assert!(truth.record("a", 5, Some("other".into())).is_err(), "one write, two values");
    }
}
