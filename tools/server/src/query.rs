//! The query string of a request, parsed once into what its handler needs.
//!
//! Parameters are read the way Kubernetes reads them: the first of a repeated one wins,
//! and a boolean is true when present with any value but `false` or `0` (in any case) —
//! so a bare `?watch` is a watch.

use crate::object::parse_resource_version;
use crate::resource::ResourceDef;
use crate::selector::Selection;
use crate::status::ApiError;
use crate::storage::{Page, ReadAt, WatchStart};
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A query string's parameters, in order, percent-decoded.
#[derive(Debug, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        let pairs = form_urlencoded::parse(raw.unwrap_or("").as_bytes());
        Self(pairs.map(|(name, value)| (name.into_owned(), value.into_owned())).collect())
    }

    /// The first value of `name`, if given.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(given, _)| given == name).map(|(_, value)| value.as_str())
    }

    /// A parameter that names one of `choices` (absent or empty: `default`); 400 for any
    /// other value, listing the choices.
    pub(crate) fn choice<T: Copy>(
        &self,
        name: &str,
        choices: &[(&str, T)],
        default: T,
    ) -> Result<T, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(given) => choices
                .iter()
                .find(|(choice, _)| *choice == given)
                .map(|(_, value)| *value)
                .ok_or_else(|| {
                    let names: Vec<&str> = choices.iter().map(|(choice, _)| *choice).collect();
                    ApiError::bad_request(format!("invalid {name} {given:?}: one of {}", names.join(", ")))
                }),
        }
    }

    /// Whether a write is a dry run: `dryRun=All`, which may be repeated (it is a list).
    pub(crate) fn dry_run(&self) -> Result<bool, ApiError> {
        dry_run(self.0.iter().filter(|(name, _)| name == "dryRun").map(|(_, value)| value.as_str()))
    }

    /// A boolean parameter: absent is false; present, true unless `false` or `0`.
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(flag_value)
    }

    /// [`Self::flag`] read straight off a raw query string, without collecting it:
    /// for a check made on every request before its handler parses the query.
    pub(crate) fn raw_flag(raw: Option<&str>, name: &str) -> bool {
        form_urlencoded::parse(raw.unwrap_or("").as_bytes())
            .find(|(given, _)| given == name)
            .is_some_and(|(_, value)| flag_value(&value))
    }

    /// `resourceVersion` as a revision; `None` when absent or empty, `Some(None)` for
    /// `"0"` ("any").
    fn resource_version(&self) -> Result<Option<Option<u64>>, ApiError> {
        match self.get("resourceVersion") {
            None | Some("") => Ok(None),
            Some("0") => Ok(Some(None)),
            Some(text) => parse_resource_version(text).map(|revision| Some(Some(revision))),
        }
    }

    /// `resourceVersionMatch`: `Some(true)` for `Exact`, `Some(false)` for `NotOlderThan`.
    fn exact_match(&self) -> Result<Option<bool>, ApiError> {
        match self.get("resourceVersionMatch") {
            None | Some("") => Ok(None),
            Some("Exact") => Ok(Some(true)),
            Some("NotOlderThan") => Ok(Some(false)),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid resourceVersionMatch {other:?}: must be Exact or NotOlderThan"
            ))),
        }
    }

    /// Which state a read of one object reflects.
    pub(crate) fn read_at(&self) -> Result<ReadAt, ApiError> {
        Ok(match self.resource_version()? {
            None => ReadAt::Consistent,
            Some(None) => ReadAt::Any,
            Some(Some(revision)) => ReadAt::NotOlderThan(revision),
        })
    }
}

/// `dryRun`, as a write's query or its `DeleteOptions` give it: `All` validates the write
/// and answers it without storing anything; no other value exists (Kubernetes refuses
/// them too).
pub(crate) fn dry_run<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<bool, ApiError> {
    let mut dry_run = false;
    for value in values {
        match value {
            "" => {}
            "All" => dry_run = true,
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid dryRun {other:?}: the only value is All"
                )));
            }
        }
    }
    Ok(dry_run)
}

/// A `GET` of a collection: a list or a watch.
#[derive(Debug)]
pub(crate) enum CollectionRequest {
    List(ListRequest),
    Watch(WatchRequest),
}

#[derive(Debug)]
pub(crate) struct ListRequest {
    pub(crate) selection: Selection,
    pub(crate) at: ReadAt,
    pub(crate) page: Page,
    /// Whether the list continues an earlier one (a `continue` token).
    pub(crate) continued: bool,
}

#[derive(Debug)]
pub(crate) struct WatchRequest {
    pub(crate) selection: Selection,
    pub(crate) start: WatchStart,
    /// Whether the client asked for periodic bookmarks.
    pub(crate) bookmarks: bool,
    /// Whether the client asked for the bookmark that ends the initial events.
    pub(crate) initial_events_end: bool,
    /// `timeoutSeconds`: how long the watch may stay open.
    pub(crate) timeout: Option<Duration>,
}

impl CollectionRequest {
    /// The request `query` makes of `def`'s objects in `namespace` (every namespace for
    /// `None`).
    pub(crate) fn parse(query: &Query, def: &ResourceDef, namespace: Option<&str>) -> Result<Self, ApiError> {
        let selection =
            Selection::parse(def, namespace, (query.get("labelSelector"), query.get("fieldSelector")))?;
        let exact = query.exact_match()?;
        if query.flag("watch") {
            return WatchRequest::parse(query, selection, exact).map(Self::Watch);
        }
        let limit = match query.get("limit") {
            None | Some("") | Some("0") => None,
            Some(text) => Some(
                text.parse::<usize>()
                    .map_err(|_| ApiError::bad_request(format!("invalid limit {text:?}: not a count")))?,
            ),
        };
        let continued = query.get("continue").filter(|token| !token.is_empty());
        let (at, after) = match (continued, query.resource_version()?, exact) {
            (Some(token), ..) => {
                let token = ContinueToken::decode(token, &selection.prefix)?;
                (ReadAt::Exact(token.revision), Some(token.after))
            }
            (None, None | Some(None), Some(true)) => {
                return Err(ApiError::bad_request("resourceVersionMatch=Exact needs a resourceVersion"));
            }
            (None, None, _) => (ReadAt::Consistent, None),
            (None, Some(None), _) => (ReadAt::Any, None),
            (None, Some(Some(revision)), Some(true)) => (ReadAt::Exact(revision), None),
            (None, Some(Some(revision)), _) => (ReadAt::NotOlderThan(revision), None),
        };
        // One more than asked for: whether it exists says whether to continue.
        let page = Page { after, limit: limit.map(|limit| limit.saturating_add(1)) };
        Ok(Self::List(ListRequest { selection, at, page, continued: continued.is_some() }))
    }
}

impl ListRequest {
    /// The `continue` token of a page that ended at key `last`, at `revision`.
    pub(crate) fn continue_token(last: &str, revision: u64) -> String {
        ContinueToken { revision, after: last.to_owned() }.encode()
    }

    /// The client's limit, if it gave one.
    pub(crate) fn limit(&self) -> Option<usize> {
        self.page.limit.map(|limit| limit - 1)
    }
}

impl WatchRequest {
    fn parse(query: &Query, selection: Selection, exact: Option<bool>) -> Result<Self, ApiError> {
        let initial_events = query.flag("sendInitialEvents");
        let timeout = match query.get("timeoutSeconds") {
            None | Some("") => None,
            Some(text) => Some(Duration::from_secs(text.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid timeoutSeconds {text:?}: not a number of seconds"))
            })?)),
        };
        let start = match (initial_events, query.resource_version()?) {
            (true, _) if exact == Some(true) => {
                return Err(ApiError::bad_request(
                    "sendInitialEvents needs resourceVersionMatch=NotOlderThan",
                ));
            }
            (true, revision) | (false, revision @ (None | Some(None))) => {
                WatchStart::Snapshot { consistent: revision.is_none() }
            }
            (false, Some(Some(revision))) => WatchStart::After(revision),
        };
        Ok(Self {
            selection,
            start,
            bookmarks: query.flag("allowWatchBookmarks"),
            initial_events_end: initial_events,
            timeout,
        })
    }
}

/// Where a paginated list continues: the revision of its first page and the last key
/// sent. Opaque to clients (base64 of JSON).
#[derive(Debug, Serialize, Deserialize)]
struct ContinueToken {
    #[serde(rename = "rv")]
    revision: u64,
    #[serde(rename = "start")]
    after: String,
}

impl ContinueToken {
    fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    fn decode(text: &str, prefix: &str) -> Result<Self, ApiError> {
        let invalid = || ApiError::bad_request(format!("invalid continue token {text:?}"));
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let token: Self = serde_json::from_slice(&json).map_err(|_| invalid())?;
        // A token from another collection would list keys outside this one's prefix.
        if !token.after.starts_with(prefix) {
            return Err(invalid());
        }
        Ok(token)
    }
}

/// Kubernetes' reading of a boolean parameter's value: anything but `false` (in any
/// case) and `0` is true, the empty value of a bare `?watch` included.
fn flag_value(value: &str) -> bool {
    !value.eq_ignore_ascii_case("false") && value != "0"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_and_repeats_are_read_as_kubernetes_reads_them() {
        let query =
            Query::parse(Some("watch&allowWatchBookmarks=False&sendInitialEvents=yes&limit=1&limit=2"));
        assert!(query.flag("watch"), "a bare parameter is true");
        assert!(!query.flag("allowWatchBookmarks"), "false in any case");
        assert!(query.flag("sendInitialEvents"), "anything but false or 0 is true");
        assert!(!query.flag("timeoutSeconds"), "absent is false");
        assert_eq!(query.get("limit"), Some("1"), "the first of a repeated parameter");
        assert!(Query::parse(Some("watch=")).flag("watch"));
        assert!(!Query::parse(Some("watch=0")).flag("watch"));
    }

    #[test]
    fn a_raw_flag_reads_as_the_parsed_one() {
        for raw in [
            "watch",
            "watch=",
            "watch=1",
            "watch=True",
            "watch=false",
            "watch=FALSE",
            "watch=0",
            "watch=%30",
            "a=b&watch=true&watch=false",
            "watch=false&watch=true",
            "watchx=true",
            "",
            "%FF=1&watch=1",
        ] {
            assert_eq!(Query::raw_flag(Some(raw), "watch"), Query::parse(Some(raw)).flag("watch"), "{raw:?}");
        }
        assert!(!Query::raw_flag(None, "watch"));
    }

    #[test]
    fn list_revisions_map_to_reads() {
        let def = ResourceDef::config_maps();
        let at =
            |query: &str| match CollectionRequest::parse(&Query::parse(Some(query)), &def, Some("default")) {
                Ok(CollectionRequest::List(list)) => Ok(list.at),
                Ok(CollectionRequest::Watch(_)) => panic!("a list"),
                Err(error) => Err(error.code()),
            };
        assert_eq!(at(""), Ok(ReadAt::Consistent));
        assert_eq!(at("resourceVersion=0"), Ok(ReadAt::Any));
        assert_eq!(at("resourceVersion=7"), Ok(ReadAt::NotOlderThan(7)));
        assert_eq!(at("resourceVersion=7&resourceVersionMatch=Exact"), Ok(ReadAt::Exact(7)));
        assert_eq!(at("resourceVersionMatch=Exact"), Err(400));
        assert_eq!(at("resourceVersion=x"), Err(400));
    }
}
