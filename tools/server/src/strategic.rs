//! Strategic merge patch (`application/strategic-merge-patch+json`): Kubernetes' patch
//! for its built-in kinds, and `kubectl patch`'s and `kubectl apply`'s default. It is a
//! JSON merge patch (RFC 7386: objects merged key by key, `null` deletes a key) in which
//! the lists the API declares mergeable are merged instead of replaced:
//!
//! - a list of objects with a merge key (a pod's `containers` by `name`, a container's
//!   `ports` by `containerPort`): each patch element merges into the original element
//!   with the same key, or is appended;
//! - a list of strings merged as a set (`metadata.finalizers`): the patch's values are
//!   added to the original's.
//!
//! Every other list is replaced whole, as a merge patch replaces it. Directives say what
//! a merge cannot:
//!
//! - `"$patch": "replace"` in an object replaces the original object whole; a list
//!   element `{"$patch": "replace"}` makes the patch's list replace the original's;
//! - `"$patch": "delete"` in an object deletes it; in a list element with its merge key,
//!   it removes the original's element with that key;
//! - `"$retainKeys": [..]`: after the merge, the object keeps only these keys (kubectl
//!   apply sends it for a pod's volumes);
//! - `"$deleteFromPrimitiveList/<field>": [..]`: these values leave a merged list of
//!   strings;
//! - `"$setElementOrder/<field>": [..]`: the order of a merged list (kubectl apply sends
//!   it with every merged list). Elements it names come first in its order; elements it
//!   does not name follow in their original order.
//!
//! A patch that breaks these rules (an unknown directive, a merged list's element without
//! its merge key, a directive's value of the wrong shape) is refused as a whole: the
//! caller answers 400 and nothing is written. The rules are those of Kubernetes'
//! `k8s.io/apimachinery/pkg/util/strategicpatch`; which lists merge, and by which key,
//! is each kind's [`BuiltIn::list_merges`].

use crate::BuiltIn;
use serde_json::{Map, Value};

/// How a mergeable list merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListMerge {
    /// Objects, matched by the value of this field.
    ByKey(&'static str),
    /// Strings, merged as a set.
    AsSet,
}

/// Why a strategic merge patch does not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StrategicError {
    #[error("{path}: unknown $patch directive {directive}")]
    UnknownDirective { path: String, directive: String },
    #[error("{path}: a list element merged by {key} does not have {key}")]
    NoMergeKey { path: String, key: &'static str },
    #[error("{path}: a list element merged by {key} is not an object")]
    NotAnObject { path: String, key: &'static str },
    #[error("{path}: {directive} must be a list")]
    NotAList { path: String, directive: String },
    #[error("the patch deletes the whole object")]
    DeletesTheObject,
}

/// What merging a patch object into an original left.
#[derive(Debug, PartialEq, Eq)]
enum Merged {
    Kept,
    /// `"$patch": "delete"`: the object goes.
    Deleted,
}

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Applies `patch` to `original`, an object of `kind`. On an error `original` may be
/// half patched: the caller patches a copy.
pub(crate) fn apply(kind: BuiltIn, original: &mut Value, patch: &Value) -> Result<(), StrategicError> {
    let merges = kind.list_merges();
    match (original.as_object_mut(), patch.as_object()) {
        (Some(original), Some(patch)) => match merge_object(merges, "", original, patch)? {
            Merged::Kept => Ok(()),
            Merged::Deleted => Err(StrategicError::DeletesTheObject),
        },
        // Not an object: as a merge patch, the patch is the result.
        _ => {
            *original = patch.clone();
            Ok(())
        }
    }
}

fn merge_object(
    merges: &[(&str, ListMerge)],
    path: &str,
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Merged, StrategicError> {
    match patch.get(PATCH) {
        None => {}
        Some(Value::String(directive)) if directive == "merge" => {}
        Some(Value::String(directive)) if directive == "replace" => {
            original.clear();
            return merge_object(merges, path, original, &without_directive(patch));
        }
        Some(Value::String(directive)) if directive == "delete" => return Ok(Merged::Deleted),
        Some(other) => {
            return Err(StrategicError::UnknownDirective {
                path: path.to_owned(),
                directive: other.to_string(),
            })
        }
    }
    for (key, values) in patch {
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let values = list_of(path, key, values)?;
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|value| !values.contains(value));
            }
        }
    }
    for (key, value) in patch {
        if key == PATCH || key == RETAIN_KEYS || key.starts_with('$') && key.contains('/') {
            continue;
        }
        let child = child_path(path, key);
        if value.is_null() {
            original.remove(key);
            continue;
        }
        let slot = original.entry(key.clone()).or_insert(Value::Null);
        match value {
            Value::Object(patch) => {
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                let Value::Object(object) = slot else { unreachable!("made an object above") };
                if merge_object(merges, &child, object, patch)? == Merged::Deleted {
                    original.remove(key);
                }
            }
            Value::Array(patch) => {
                if !slot.is_array() {
                    *slot = Value::Array(Vec::new());
                }
                let Value::Array(list) = slot else { unreachable!("made a list above") };
                merge_list(merges, &child, list, patch)?;
            }
            scalar => *slot = scalar.clone(),
        }
    }
    for (key, order) in patch {
        if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) {
            let order = list_of(path, key, order)?;
            let merge = merge_of(merges, &child_path(path, field));
            if let Some(Value::Array(list)) = original.get_mut(field) {
                reorder(list, order, merge);
            }
        }
    }
    if let Some(retained) = patch.get(RETAIN_KEYS) {
        let retained = list_of(path, RETAIN_KEYS, retained)?;
        original.retain(|key, _| retained.iter().any(|kept| kept.as_str() == Some(key)));
    }
    Ok(Merged::Kept)
}

fn merge_list(
    merges: &[(&str, ListMerge)],
    path: &str,
    original: &mut Vec<Value>,
    patch: &[Value],
) -> Result<(), StrategicError> {
    match merge_of(merges, path) {
        None => *original = patch.to_vec(),
        Some(ListMerge::AsSet) => {
            for value in patch {
                if !original.contains(value) {
                    original.push(value.clone());
                }
            }
        }
        Some(ListMerge::ByKey(key)) => {
            // The list's own directive is an element holding nothing else.
            let replaces = |element: &Value| {
                element.as_object().is_some_and(|element| {
                    element.len() == 1 && element.get(PATCH).and_then(Value::as_str) == Some("replace")
                })
            };
            if patch.iter().any(replaces) {
                original.clear();
            }
            for element in patch.iter().filter(|element| !replaces(element)) {
                let Value::Object(element) = element else {
                    return Err(StrategicError::NotAnObject { path: path.to_owned(), key });
                };
                let Some(wanted) = element.get(key) else {
                    return Err(StrategicError::NoMergeKey { path: path.to_owned(), key });
                };
                let at = original.iter().position(|existing| existing.get(key) == Some(wanted));
                if element.get(PATCH).and_then(Value::as_str) == Some("delete") {
                    if let Some(at) = at {
                        original.remove(at);
                    }
                    continue;
                }
                let mut merged = match at {
                    Some(at) => match original.remove(at) {
                        Value::Object(existing) => existing,
                        _ => Map::new(),
                    },
                    None => Map::new(),
                };
                if merge_object(merges, path, &mut merged, element)? == Merged::Kept {
                    original.insert(at.unwrap_or(original.len()), Value::Object(merged));
                }
            }
        }
    }
    Ok(())
}

/// `list` in `order`'s order; what `order` does not name follows, as it was.
fn reorder(list: &mut [Value], order: &[Value], merge: Option<ListMerge>) {
    let identity = |value: &Value| match merge {
        Some(ListMerge::ByKey(key)) => value.get(key).cloned(),
        _ => Some(value.clone()),
    };
    let rank = |value: &Value| {
        let own = identity(value);
        order.iter().position(|named| own.is_some() && identity(named) == own).unwrap_or(order.len())
    };
    list.sort_by_key(rank);
}

fn merge_of(merges: &[(&str, ListMerge)], path: &str) -> Option<ListMerge> {
    merges.iter().find(|(merged, _)| *merged == path).map(|(_, merge)| *merge)
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn list_of<'a>(path: &str, directive: &str, value: &'a Value) -> Result<&'a [Value], StrategicError> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| StrategicError::NotAList { path: path.to_owned(), directive: directive.to_owned() })
}

fn without_directive(patch: &Map<String, Value>) -> Map<String, Value> {
    patch.iter().filter(|(key, _)| *key != PATCH).map(|(key, value)| (key.clone(), value.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patched(kind: BuiltIn, mut original: Value, patch: Value) -> Result<Value, StrategicError> {
        apply(kind, &mut original, &patch).map(|()| original)
    }

    fn pod(containers: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    #[test]
    fn containers_merge_by_name_and_keep_what_the_patch_does_not_name() {
        let original = pod(json!([
            {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}]},
            {"name": "sidecar", "image": "busybox"},
        ]));
        let patch = json!({"spec": {"containers": [
            {"name": "web", "image": "nginx:2"},
            {"name": "new", "image": "redis"},
        ]}});
        assert_eq!(
            patched(BuiltIn::Pod, original, patch).unwrap()["spec"]["containers"],
            json!([
                {"name": "web", "image": "nginx:2", "ports": [{"containerPort": 80}]},
                {"name": "sidecar", "image": "busybox"},
                {"name": "new", "image": "redis"},
            ])
        );
    }

    #[test]
    fn nested_lists_merge_by_their_own_keys() {
        let original =
            pod(json!([{"name": "web", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]));
        let patch = json!({"spec": {"containers": [{"name": "web", "env": [
            {"name": "B", "value": "3"}, {"name": "A", "$patch": "delete"}
        ]}]}});
        assert_eq!(
            patched(BuiltIn::Pod, original, patch).unwrap()["spec"]["containers"][0]["env"],
            json!([{"name": "B", "value": "3"}])
        );
    }

    #[test]
    fn directives_replace_delete_and_order() {
        let original = pod(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]));
        let replaced = json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "z"}]}});
        assert_eq!(
            patched(BuiltIn::Pod, original.clone(), replaced).unwrap()["spec"]["containers"],
            json!([{"name": "z"}])
        );

        let ordered = json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}]}});
        assert_eq!(
            patched(BuiltIn::Pod, original.clone(), ordered).unwrap()["spec"]["containers"],
            json!([{"name": "c"}, {"name": "a"}, {"name": "b"}])
        );

        let spec_replaced = json!({"spec": {"$patch": "replace", "restartPolicy": "Never"}});
        assert_eq!(
            patched(BuiltIn::Pod, original.clone(), spec_replaced).unwrap()["spec"],
            json!({"restartPolicy": "Never"})
        );

        let spec_deleted = json!({"spec": {"$patch": "delete"}});
        assert_eq!(patched(BuiltIn::Pod, original.clone(), spec_deleted).unwrap().get("spec"), None);

        let retained = json!({"spec": {"$retainKeys": ["containers"], "restartPolicy": "Never"}});
        assert_eq!(patched(BuiltIn::Pod, original, retained).unwrap()["spec"].as_object().unwrap().len(), 1);
    }

    #[test]
    fn finalizers_merge_as_a_set_and_leave_by_directive() {
        let original = json!({"metadata": {"name": "n", "finalizers": ["a", "b"]}});
        let patch =
            json!({"metadata": {"finalizers": ["c", "a"], "$deleteFromPrimitiveList/finalizers": ["b"]}});
        assert_eq!(
            patched(BuiltIn::ConfigMap, original, patch).unwrap()["metadata"]["finalizers"],
            json!(["a", "c"])
        );
    }

    #[test]
    fn lists_without_a_merge_replace_and_null_deletes() {
        let original = json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"},
            "spec": {"tolerations": [{"key": "x"}]}});
        let patch = json!({"metadata": {"labels": {"a": null}}, "spec": {"tolerations": [{"key": "y"}]}});
        let result = patched(BuiltIn::Pod, original, patch).unwrap();
        assert_eq!(result["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(result["spec"]["tolerations"], json!([{"key": "y"}]));
        assert_eq!(result["data"], json!({"k": "v"}));
    }

    #[test]
    fn a_patch_that_breaks_the_rules_is_refused() {
        let original = pod(json!([{"name": "a"}]));
        let refused = [
            (
                json!({"spec": {"containers": [{"image": "x"}]}}),
                "spec.containers: a list element merged by name does not have name",
            ),
            (
                json!({"spec": {"containers": ["a"]}}),
                "spec.containers: a list element merged by name is not an object",
            ),
            (json!({"spec": {"$patch": "nope"}}), "spec: unknown $patch directive \"nope\""),
            (json!({"spec": {"$retainKeys": "containers"}}), "spec: $retainKeys must be a list"),
            (json!({"$patch": "delete"}), "the patch deletes the whole object"),
        ];
        for (patch, message) in refused {
            assert_eq!(patched(BuiltIn::Pod, original.clone(), patch).unwrap_err().to_string(), message);
        }
    }
}
