//! Label and field selectors, in Kubernetes' syntax, and the selection of a list or
//! watch they make together with its namespace.
//!
//! Labels: comma-separated requirements, each `key=value` (or `==`), `key!=value`,
//! `key in (a,b)`, `key notin (a,b)`, `key` (exists) or `!key` (does not exist).
//! A watch's selector runs on the dispatcher for every write it could match, so its cost
//! is bounded: at most [`MAX_REQUIREMENTS`] requirements and [`MAX_SET_VALUES`] values in
//! all its sets, each set a sorted set (a lookup, not a scan). One match is then at most
//! a hundred map lookups however a client writes its selector.
//! Fields: `field=value` (or `==`) and `field!=value` on `metadata.name`,
//! `metadata.namespace`, `spec.nodeName` for resources that index it (pods), and the
//! fields Kubernetes makes selectable for each built-in kind (an event's
//! `involvedObject.name`, a secret's `type`, a pod's `status.phase`, …).

use crate::object::Object;
use crate::resource::ResourceDef;
use crate::status::ApiError;
use crate::validation::{is_label_key, is_label_value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use watchcache::{ListOptions, WatchOptions};

/// `options` (a list's or a watch's: they share the filter setters) narrowed to what
/// `selection` selects.
macro_rules! select {
    ($options:expr, $selection:expr) => {{
        let selection = $selection;
        let mut options = $options.prefix(selection.prefix.clone());
        if let Some(node_name) = &selection.node_name {
            options = options.trigger(node_name.clone());
        }
        if let Some(predicate) = selection.predicate.clone() {
            options = options.predicate(move |object| predicate(object));
        }
        options
    }};
}

/// The selectors the index does not serve, as one test.
pub(crate) type Predicate = Arc<dyn Fn(&Object) -> bool + Send + Sync>;

/// What a list or watch selects: the namespace's key prefix, the trigger value of a
/// `spec.nodeName=` term (served by the cacher's index), and a predicate for the rest.
#[derive(Clone)]
pub(crate) struct Selection {
    pub(crate) prefix: String,
    pub(crate) node_name: Option<String>,
    pub(crate) predicate: Option<Predicate>,
}

impl std::fmt::Debug for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selection")
            .field("prefix", &self.prefix)
            .field("node_name", &self.node_name)
            .field("predicate", &self.predicate.is_some())
            .finish()
    }
}

impl Selection {
    /// The selection of `def`'s objects in `namespace` (every namespace for `None`) that
    /// match the `labelSelector` and `fieldSelector` values given.
    pub(crate) fn parse(
        def: &ResourceDef,
        namespace: Option<&str>,
        (labels, fields): (Option<&str>, Option<&str>),
    ) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(labels.unwrap_or(""))?;
        let mut fields = FieldSelector::parse(fields.unwrap_or(""), def)?;
        let node_name = fields.take_node_name();
        let predicate: Option<Predicate> = if labels.is_empty() && fields.is_empty() {
            None
        } else {
            Some(Arc::new(move |object: &Object| labels.matches(object.labels()) && fields.matches(object)))
        };
        Ok(Self { prefix: def.prefix(namespace), node_name, predicate })
    }

    /// Whether `object`, at `key`, is selected.
    pub(crate) fn matches(&self, key: &str, object: &Object) -> bool {
        key.starts_with(&self.prefix)
            && self.node_name.as_deref().is_none_or(|node| object.node_name().unwrap_or("") == node)
            && self.predicate.as_ref().is_none_or(|predicate| predicate(object))
    }

    pub(crate) fn list_options(&self) -> ListOptions<Object> {
        select!(ListOptions::new(), self)
    }

    pub(crate) fn watch_options(&self) -> WatchOptions<Object> {
        select!(WatchOptions::new(), self)
    }
}

/// The most requirements in one label selector.
pub(crate) const MAX_REQUIREMENTS: usize = 100;
/// The most values in all the `in` and `notin` sets of one label selector.
pub(crate) const MAX_SET_VALUES: usize = 1_000;

/// A parsed `labelSelector`; matches every object when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    NotExists(String),
}

impl LabelSelector {
    /// Parses a `labelSelector` query value.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let requirements: Vec<Requirement> = split_top_level(text)
            .into_iter()
            .map(str::trim)
            .filter(|term| !term.is_empty())
            .map(|term| parse_requirement(term).map_err(|why| invalid("label", text, why)))
            .collect::<Result<_, _>>()?;
        let set_values: usize = requirements
            .iter()
            .map(|requirement| match requirement {
                Requirement::In(_, values) | Requirement::NotIn(_, values) => values.len(),
                _ => 0,
            })
            .sum();
        if requirements.len() > MAX_REQUIREMENTS || set_values > MAX_SET_VALUES {
            // Not the selector itself in the message: it may be very long.
            return Err(ApiError::bad_request(format!(
                "label selector too costly: {} requirements and {set_values} set values, at most \
                 {MAX_REQUIREMENTS} and {MAX_SET_VALUES}",
                requirements.len()
            )));
        }
        Ok(Self(requirements))
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|requirement| match requirement {
            Requirement::Equals(key, value) => labels.get(key) == Some(value),
            Requirement::NotEquals(key, value) => labels.get(key) != Some(value),
            Requirement::In(key, values) => labels.get(key).is_some_and(|value| values.contains(value)),
            Requirement::NotIn(key, values) => labels.get(key).is_none_or(|value| !values.contains(value)),
            Requirement::Exists(key) => labels.contains_key(key),
            Requirement::NotExists(key) => !labels.contains_key(key),
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn invalid(kind: &str, text: &str, why: String) -> ApiError {
    ApiError::bad_request(format!("invalid {kind} selector {text:?}: {why}"))
}

/// Splits on commas outside parentheses (`a in (x,y),b` is two terms).
fn split_top_level(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (at, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
}

fn parse_requirement(term: &str) -> Result<Requirement, String> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::NotExists(label_key(key.trim())?));
    }
    for (operator, make) in [
        ("!=", Requirement::NotEquals as fn(String, String) -> Requirement),
        ("==", Requirement::Equals),
        ("=", Requirement::Equals),
    ] {
        if let Some((key, value)) = term.split_once(operator) {
            return Ok(make(label_key(key.trim())?, label_value(value.trim())?));
        }
    }
    let mut words = term.splitn(2, char::is_whitespace);
    let key = label_key(words.next().unwrap_or_default())?;
    let Some(rest) = words.next().map(str::trim) else { return Ok(Requirement::Exists(key)) };
    let (operator, set) =
        rest.split_once(char::is_whitespace).map_or((rest, ""), |(op, set)| (op, set.trim()));
    let set = set
        .strip_prefix('(')
        .and_then(|set| set.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set after {operator:?}"))?;
    let values = set.split(',').map(|value| label_value(value.trim())).collect::<Result<BTreeSet<_>, _>>()?;
    match operator {
        "in" => Ok(Requirement::In(key, values)),
        "notin" => Ok(Requirement::NotIn(key, values)),
        other => Err(format!("unknown operator {other:?}")),
    }
}

/// A label key as a label may have it.
fn label_key(key: &str) -> Result<String, String> {
    if !is_label_key(key) {
        return Err(format!("invalid label key {key:?}"));
    }
    Ok(key.to_owned())
}

/// A label value as a label may have it.
fn label_value(value: &str) -> Result<String, String> {
    if !is_label_value(value) {
        return Err(format!("invalid label value {value:?}"));
    }
    Ok(value.to_owned())
}

/// The fields a `fieldSelector` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Name,
    Namespace,
    NodeName,
    /// The resource's selectable field at this index of
    /// [`ResourceDef::selectable_fields`].
    Selectable(usize),
}

/// A parsed `fieldSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<(Field, bool, String)>,
}

impl FieldSelector {
    /// Parses a `fieldSelector` of `def`'s objects.
    pub fn parse(text: &str, def: &ResourceDef) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|term| !term.is_empty()) {
            let (field, equals, value) = if let Some((field, value)) = term.split_once("!=") {
                (field, false, value)
            } else if let Some((field, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (field, true, value)
            } else {
                return Err(invalid("field", text, format!("{term:?} has no operator")));
            };
            let field = match field.trim() {
                "metadata.name" => Field::Name,
                "metadata.namespace" => Field::Namespace,
                "spec.nodeName" if def.node_name => Field::NodeName,
                other => match def.selectable_fields().iter().position(|(name, _)| *name == other) {
                    Some(index) => Field::Selectable(index),
                    None => return Err(invalid("field", text, format!("field {other:?} is not supported"))),
                },
            };
            terms.push((field, equals, value.trim().to_owned()));
        }
        Ok(Self { terms })
    }

    /// The value of a `spec.nodeName=value` term, which the trigger index serves; the
    /// other terms are left to [`Self::matches`].
    pub(crate) fn take_node_name(&mut self) -> Option<String> {
        let at = self.terms.iter().position(|(field, equals, _)| *field == Field::NodeName && *equals)?;
        Some(self.terms.remove(at).2)
    }

    /// Whether `object` satisfies every term.
    pub fn matches(&self, object: &Object) -> bool {
        self.terms.iter().all(|(field, equals, value)| {
            let actual = match field {
                Field::Name => object.name(),
                Field::Namespace => object.namespace(),
                Field::NodeName => object.node_name().unwrap_or(""),
                Field::Selectable(index) => object.selectable_field(*index),
            };
            (actual == value) == *equals
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_label_operator_matches_as_kubernetes_does() {
        let web = labels(&[("app", "web"), ("tier", "front")]);
        let db = labels(&[("app", "db")]);
        for (selector, web_matches, db_matches) in [
            ("", true, true),
            ("app=web", true, false),
            ("app==web", true, false),
            ("app!=web", false, true),
            ("app in (web, db)", true, true),
            ("app in (db)", false, true),
            ("app notin (web)", false, true),
            ("tier", true, false),
            ("!tier", false, true),
            ("app=web,tier=front", true, false),
            ("app in (web,db),!tier", false, true),
            ("example.com/owner", false, false),
        ] {
            let parsed = LabelSelector::parse(selector).unwrap();
            assert_eq!(parsed.matches(&web), web_matches, "{selector} on web");
            assert_eq!(parsed.matches(&db), db_matches, "{selector} on db");
        }
    }

    #[test]
    fn bad_label_selectors_are_refused() {
        for selector in ["app=(x", "app in x", "app in (a b)", "app between (a)", "a b c=d", "=x", "app=a/b"]
        {
            let error = LabelSelector::parse(selector).expect_err(selector);
            assert_eq!(error.code(), 400);
            assert!(error.message().starts_with("invalid label selector"), "{}", error.message());
        }
    }

    #[test]
    fn a_selector_beyond_its_cost_bound_is_refused() {
        let values = |count: usize| (0..count).map(|value| format!("v{value}")).collect::<Vec<_>>().join(",");
        let largest = format!("app in ({})", values(MAX_SET_VALUES));
        let parsed = LabelSelector::parse(&largest).unwrap();
        assert!(parsed.matches(&labels(&[("app", "v999")])));
        assert!(!parsed.matches(&labels(&[("app", "v1000")])));
        let split = format!("app in ({}),tier notin ({})", values(600), values(401));
        let requirements = vec!["app"; MAX_REQUIREMENTS + 1].join(",");
        for costly in [format!("app in ({})", values(MAX_SET_VALUES + 1)), split, requirements] {
            let error = LabelSelector::parse(&costly).expect_err("too costly");
            assert_eq!(error.code(), 400);
            assert!(error.message().starts_with("label selector too costly"), "{}", error.message());
            assert!(error.message().len() < 200, "the message does not repeat the selector");
        }
        assert!(LabelSelector::parse(&vec!["app"; MAX_REQUIREMENTS].join(",")).is_ok());
    }

    #[test]
    fn field_selectors_name_supported_fields_only() {
        let (maps, pods) = (ResourceDef::config_maps(), ResourceDef::pods());
        let mut selector = FieldSelector::parse("spec.nodeName=n1,metadata.name!=a", &pods).unwrap();
        assert_eq!(selector.take_node_name().as_deref(), Some("n1"));
        assert!(!selector.is_empty());
        assert!(FieldSelector::parse("status.phase=Running", &pods).is_ok());
        let widgets = ResourceDef::parse("example.com/v1/widgets/Widget").unwrap();
        for (text, def) in [
            ("spec.nodeName=n1", &maps),
            ("status.phase=Running", &maps),
            ("metadata.name", &pods),
            ("type=Opaque", &widgets),
        ] {
            let error = FieldSelector::parse(text, def).expect_err(text);
            assert_eq!(error.code(), 400);
        }
    }

    #[test]
    fn an_event_is_selected_by_the_object_it_is_about() {
        let events = ResourceDef::events();
        let event = |name: &str, about: &str| {
            let body = format!(
                r#"{{"metadata":{{"name":"{name}"}},"involvedObject":{{"kind":"ConfigMap","name":"{about}"}},"source":{{"component":"kubelet"}}}}"#
            );
            let submitted = crate::object::Submitted::parse(body.as_bytes(), &events).unwrap();
            submitted.into_object(&events, "default", name.into(), crate::object::Identity::new()).unwrap()
        };
        let selector = FieldSelector::parse(
            "involvedObject.kind=ConfigMap,involvedObject.name=web,source=kubelet",
            &events,
        )
        .unwrap();
        assert!(selector.matches(&event("e1", "web")));
        assert!(!selector.matches(&event("e2", "db")));
        let unset = FieldSelector::parse("reason=", &events).unwrap();
        assert!(unset.matches(&event("e3", "web")), "an unset field is empty");
    }
}
