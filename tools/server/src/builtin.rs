//! The kinds Kubernetes defines that the server serves. A body of one must decode as
//! Kubernetes' own type does (`k8s-openapi`'s types, generated from Kubernetes'
//! OpenAPI): a configmap's `data` values are strings, a secret's `data` values base64, a
//! pod's containers a list. kube-apiserver refuses what does not decode with 400
//! `BadRequest`; so does the server. Fields neither knows are kept, as kube-apiserver
//! 1.20 reads JSON without strict decoding.
//!
//! Each kind also has the fields a `fieldSelector` may name (Kubernetes' per-kind
//! `ToSelectableFields`), and what Kubernetes fills in on a write (a secret's `type`
//! defaults to `Opaque`; its `stringData` is merged into `data`).

use crate::strategic::ListMerge;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A built-in kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuiltIn {
    /// Core `v1` `ConfigMap`.
    ConfigMap,
    /// Core `v1` `Pod`.
    Pod,
    /// Core `v1` `Secret`.
    Secret,
    /// Core `v1` `Event`.
    Event,
    /// Core `v1` `Namespace`.
    Namespace,
}

impl BuiltIn {
    /// Whether `body` (a whole object, `kind` and `apiVersion` included) decodes as this
    /// kind; `Err` says where it does not (`data.k: invalid type: …`). With `Unknown::List`,
    /// `Ok` holds the fields the kind does not have (`spec.containers[0].colour`), which
    /// a strict write refuses; a read of what is stored skips that work.
    pub(crate) fn decodes(self, body: &Value, unknown: Unknown) -> Result<Vec<String>, String> {
        use k8s_openapi::api::core::v1 as core;
        match self {
            Self::ConfigMap => decode::<core::ConfigMap>(body, unknown),
            Self::Pod => decode::<core::Pod>(body, unknown),
            Self::Secret => decode::<core::Secret>(body, unknown),
            Self::Event => decode::<core::Event>(body, unknown),
            Self::Namespace => decode::<core::Namespace>(body, unknown),
        }
    }
}

impl BuiltIn {
    /// Every built-in kind.
    #[cfg(feature = "protobuf")]
    pub(crate) const ALL: [Self; 5] =
        [Self::ConfigMap, Self::Pod, Self::Secret, Self::Event, Self::Namespace];

    /// Adds the kind's schema (Kubernetes' OpenAPI, through `k8s-openapi`) and those it
    /// names to `generator`; the schema's name (`io.k8s.api.core.v1.Pod`).
    pub(crate) fn generate_schema(self, generator: &mut schemars::generate::SchemaGenerator) -> String {
        use k8s_openapi::api::core::v1 as core;
        use schemars::JsonSchema;
        macro_rules! generated {
            ($kind:ty) => {{
                generator.subschema_for::<$kind>();
                <$kind>::schema_name().into_owned()
            }};
        }
        match self {
            Self::ConfigMap => generated!(core::ConfigMap),
            Self::Pod => generated!(core::Pod),
            Self::Secret => generated!(core::Secret),
            Self::Event => generated!(core::Event),
            Self::Namespace => generated!(core::Namespace),
        }
    }

    /// The fields a `fieldSelector` may name besides `metadata.name` and
    /// `metadata.namespace`: each selector name with the object's field it reads (dotted).
    /// A pod's `spec.nodeName`, which the cacher's trigger index serves, is apart (see
    /// [`crate::ResourceDef::node_name`]).
    pub(crate) fn selectable_fields(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::ConfigMap => &[],
            Self::Pod => &[
                ("spec.restartPolicy", "spec.restartPolicy"),
                ("spec.schedulerName", "spec.schedulerName"),
                ("spec.serviceAccountName", "spec.serviceAccountName"),
                ("status.phase", "status.phase"),
                ("status.podIP", "status.podIP"),
                ("status.nominatedNodeName", "status.nominatedNodeName"),
            ],
            Self::Secret => &[("type", "type")],
            Self::Namespace => &[("status.phase", "status.phase")],
            Self::Event => &[
                ("involvedObject.kind", "involvedObject.kind"),
                ("involvedObject.namespace", "involvedObject.namespace"),
                ("involvedObject.name", "involvedObject.name"),
                ("involvedObject.uid", "involvedObject.uid"),
                ("involvedObject.apiVersion", "involvedObject.apiVersion"),
                ("involvedObject.resourceVersion", "involvedObject.resourceVersion"),
                ("involvedObject.fieldPath", "involvedObject.fieldPath"),
                ("reason", "reason"),
                ("reportingComponent", "reportingComponent"),
                ("source", "source.component"),
                ("type", "type"),
            ],
        }
    }

    /// The lists a strategic merge patch merges rather than replaces, by dotted path (a
    /// list's elements add no segment): Kubernetes' `patchStrategy:"merge"` fields of the
    /// kind, with their `patchMergeKey`. No crate carries these tags (`k8s-openapi`'s
    /// types encode list keys only inside their merge code), so they are stated here, for
    /// the kinds served.
    pub(crate) fn list_merges(self) -> &'static [(&'static str, ListMerge)] {
        use ListMerge::{AsSet, ByKey};
        match self {
            Self::ConfigMap | Self::Secret | Self::Event => OBJECT_META_MERGES,
            Self::Namespace => &[
                ("metadata.finalizers", AsSet),
                ("metadata.ownerReferences", ByKey("uid")),
                ("status.conditions", ByKey("type")),
            ],
            Self::Pod => &[
                ("metadata.finalizers", AsSet),
                ("metadata.ownerReferences", ByKey("uid")),
                ("spec.volumes", ByKey("name")),
                ("spec.imagePullSecrets", ByKey("name")),
                ("spec.hostAliases", ByKey("ip")),
                ("spec.topologySpreadConstraints", ByKey("topologyKey")),
                ("spec.resourceClaims", ByKey("name")),
                ("spec.schedulingGates", ByKey("name")),
                ("spec.containers", ByKey("name")),
                ("spec.containers.ports", ByKey("containerPort")),
                ("spec.containers.env", ByKey("name")),
                ("spec.containers.volumeMounts", ByKey("mountPath")),
                ("spec.containers.volumeDevices", ByKey("devicePath")),
                ("spec.initContainers", ByKey("name")),
                ("spec.initContainers.ports", ByKey("containerPort")),
                ("spec.initContainers.env", ByKey("name")),
                ("spec.initContainers.volumeMounts", ByKey("mountPath")),
                ("spec.initContainers.volumeDevices", ByKey("devicePath")),
                ("spec.ephemeralContainers", ByKey("name")),
                ("spec.ephemeralContainers.ports", ByKey("containerPort")),
                ("spec.ephemeralContainers.env", ByKey("name")),
                ("spec.ephemeralContainers.volumeMounts", ByKey("mountPath")),
                ("spec.ephemeralContainers.volumeDevices", ByKey("devicePath")),
                ("status.conditions", ByKey("type")),
                ("status.podIPs", ByKey("ip")),
                ("status.hostIPs", ByKey("ip")),
                ("status.resourceClaimStatuses", ByKey("name")),
            ],
        }
    }

    /// Fills in what Kubernetes fills in on a write of `body` (the object without
    /// `metadata`, which decoded as this kind).
    pub(crate) fn complete(self, body: &mut Map<String, Value>) {
        if self == Self::Namespace {
            complete_namespace(body);
        }
        // A pod no kubelet has reported on is `Pending`, as Kubernetes creates it.
        if self == Self::Pod {
            if let Value::Object(status) = body.entry("status").or_insert_with(|| Value::Object(Map::new())) {
                status.entry("phase").or_insert_with(|| Value::String("Pending".into()));
            }
        }
        if self != Self::Secret {
            return;
        }
        if body.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
            body.insert("type".into(), Value::String("Opaque".into()));
        }
        if let Some(Value::Object(strings)) = body.remove("stringData") {
            let data = body.entry("data").or_insert_with(|| Value::Object(Map::new()));
            if !data.is_object() {
                *data = Value::Object(Map::new());
            }
            if let Value::Object(data) = data {
                for (key, value) in strings {
                    let text = value.as_str().unwrap_or_default();
                    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
                    data.insert(key, Value::String(encoded));
                }
            }
        }
    }
}

/// The merged lists every object has, in its `metadata`.
const OBJECT_META_MERGES: &[(&str, ListMerge)] =
    &[("metadata.finalizers", ListMerge::AsSet), ("metadata.ownerReferences", ListMerge::ByKey("uid"))];

/// A namespace is `Active` and finalized by `kubernetes` unless it says otherwise (the
/// server deletes a namespace's objects with it, so nothing waits on the finalizer).
fn complete_namespace(body: &mut Map<String, Value>) {
    let mut part = |name: &str| {
        let part = body.entry(name).or_insert_with(|| Value::Object(Map::new()));
        if !part.is_object() {
            *part = Value::Object(Map::new());
        }
        part.as_object_mut().map(std::mem::take).unwrap_or_default()
    };
    let (mut spec, mut status) = (part("spec"), part("status"));
    spec.entry("finalizers").or_insert_with(|| serde_json::json!(["kubernetes"]));
    status.entry("phase").or_insert_with(|| Value::String("Active".into()));
    body.insert("spec".into(), Value::Object(spec));
    body.insert("status".into(), Value::Object(status));
}

/// The string at a dotted `path` of `body`; empty when absent, as Kubernetes reads an
/// unset field.
pub(crate) fn field_at<'a>(body: &'a Map<String, Value>, path: &str) -> &'a str {
    let (first, rest) = path.split_once('.').unwrap_or((path, ""));
    body.get(first).map_or("", |value| string_at(value, rest))
}

/// The string at a dotted `path` below `value` (the empty path: `value` itself); empty
/// when absent.
pub(crate) fn string_at<'a>(value: &'a Value, path: &str) -> &'a str {
    let found =
        path.split('.').filter(|part| !part.is_empty()).try_fold(value, |value, part| value.get(part));
    found.and_then(Value::as_str).unwrap_or("")
}

/// Whether a decode lists the fields the kind does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unknown {
    /// A write: the fields are listed, for `fieldValidation`.
    List,
    /// A read of a stored object (written through a server that checked it).
    Skip,
}

fn decode<'de, T: Deserialize<'de> + Serialize>(
    body: &'de Value,
    unknown: Unknown,
) -> Result<Vec<String>, String> {
    let decoded: T = serde_path_to_error::deserialize(body).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        }
    })?;
    if unknown == Unknown::Skip {
        return Ok(Vec::new());
    }
    // What the type keeps of the body, encoded again: a field it dropped is one it does
    // not have.
    let kept = serde_json::to_value(&decoded).map_err(|error| error.to_string())?;
    let mut unknown = Vec::new();
    dropped(body, &kept, "", &mut unknown);
    Ok(unknown)
}

/// The paths of the fields of `given` that `kept` lacks (a `null` is no field).
fn dropped(given: &Value, kept: &Value, path: &str, out: &mut Vec<String>) {
    match (given, kept) {
        (Value::Object(given), Value::Object(kept)) => {
            for (key, value) in given {
                let at = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match kept.get(key) {
                    Some(kept) => dropped(value, kept, &at, out),
                    None if !value.is_null() => out.push(at),
                    None => {}
                }
            }
        }
        (Value::Array(given), Value::Array(kept)) if given.len() == kept.len() => {
            for (index, (given, kept)) in given.iter().zip(kept).enumerate() {
                dropped(given, kept, &format!("{path}[{index}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::{field_at, BuiltIn, Unknown};
    use serde_json::{json, Value};

    #[test]
    fn a_secret_is_completed_as_kubernetes_completes_it() {
        let Value::Object(mut body) = json!({ "data": { "a": "YQ==" }, "stringData": { "b": "b" } }) else {
            unreachable!()
        };
        BuiltIn::Secret.complete(&mut body);
        assert_eq!(Value::Object(body), json!({ "type": "Opaque", "data": { "a": "YQ==", "b": "Yg==" } }));
        let Value::Object(mut map) = json!({ "data": { "k": "v" } }) else { unreachable!() };
        BuiltIn::ConfigMap.complete(&mut map);
        assert_eq!(Value::Object(map), json!({ "data": { "k": "v" } }));
    }

    #[test]
    fn selectable_fields_read_nested_strings_and_default_to_empty() {
        let Value::Object(event) =
            json!({ "involvedObject": { "name": "web" }, "source": { "component": "k" }, "count": 3 })
        else {
            unreachable!()
        };
        let read = |selector: &str| {
            let (_, path) =
                BuiltIn::Event.selectable_fields().iter().find(|(name, _)| *name == selector).unwrap();
            field_at(&event, path)
        };
        assert_eq!((read("involvedObject.name"), read("source"), read("reason")), ("web", "k", ""));
        assert_eq!(field_at(&event, "count"), "", "not a string");
    }

    #[test]
    fn bodies_decode_as_kubernetes_types_do() {
        let good = [
            (BuiltIn::ConfigMap, json!({ "metadata": { "name": "a" }, "data": { "k": "v" }, "extra": 1 })),
            (
                BuiltIn::Secret,
                json!({ "data": { "k": "dg==" }, "stringData": { "s": "v" }, "type": "Opaque" }),
            ),
            (BuiltIn::Pod, json!({ "spec": { "nodeName": "n", "containers": [{ "name": "c" }] } })),
            (BuiltIn::Event, json!({ "involvedObject": { "name": "a" }, "reason": "Made", "count": 2 })),
        ];
        let unknown = |kind: BuiltIn, body: &Value| {
            kind.decodes(body, Unknown::List).unwrap_or_else(|error| panic!("{kind:?} {body}: {error}"))
        };
        assert_eq!(unknown(good[0].0, &good[0].1), ["extra"]);
        for (kind, body) in &good[1..] {
            assert_eq!(unknown(*kind, body), Vec::<String>::new(), "{kind:?} {body}");
        }
        let pod = json!({ "spec": { "containers": [{ "name": "c", "colour": "red" }], "nodeName": null }, "metadata": { "labels": {} } });
        assert_eq!(unknown(BuiltIn::Pod, &pod), ["spec.containers[0].colour"]);
        let bad = [
            (BuiltIn::ConfigMap, json!({ "data": { "k": 1 } }), "data.k"),
            (BuiltIn::ConfigMap, json!({ "binaryData": { "k": "not base64!" } }), "binaryData.k"),
            (BuiltIn::ConfigMap, json!({ "metadata": { "labels": { "a": 1 } } }), "metadata.labels.a"),
            (BuiltIn::Secret, json!({ "data": { "k": "%%%" } }), "data.k"),
            (BuiltIn::Pod, json!({ "spec": { "containers": { "name": "c" } } }), "spec.containers"),
            (BuiltIn::Event, json!({ "count": "two" }), "count"),
        ];
        for (kind, body, path) in bad {
            let error = kind.decodes(&body, Unknown::List).expect_err(&body.to_string());
            assert!(error.starts_with(path), "{kind:?} {body}: {error}");
        }
    }
}
