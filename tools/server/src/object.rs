//! Objects as the server stores them: the fields selectors read, and the JSON encoded
//! once, when the object is written.
//!
//! The encoding is split around `metadata.resourceVersion`, the one field that differs
//! between the places an object is sent (its own revision in a list or an `ADDED` event;
//! the deleting revision in a `DELETED` event), so any revision is written into it by
//! copying bytes: an event reaching a thousand watchers is encoded once, as Kubernetes'
//! `cachingObject` does.

use crate::builtin::Unknown;
use crate::resource::ResourceDef;
use crate::status::{ApiError, FieldError};
use crate::validation;
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write;

/// One stored object. Its revision is the one that last wrote it: written in by the
/// cacher when the put is applied (see [`watchcache::CacherBuilder::stamp_revision`]),
/// or etcd's `mod_revision`.
///
/// Two objects are equal when they are the same write: the same revision and encoding
/// (which is how a relist tells an unchanged object).
#[derive(Debug)]
pub struct Object {
    namespace: String,
    name: String,
    labels: BTreeMap<String, String>,
    /// `spec.nodeName`, read for pods (the field Kubernetes indexes pods by).
    node_name: Option<String>,
    /// The values of the resource's other selectable fields, in the order of
    /// [`ResourceDef::selectable_fields`].
    fields: Box<[String]>,
    uid: String,
    created: String,
    revision: u64,
    /// The encoding after the `resourceVersion` value: `"` then the rest of `metadata`
    /// and the rest of the object. The part before it depends only on the resource
    /// (`{"apiVersion":…,"kind":…,"metadata":{"resourceVersion":"`).
    tail: Bytes,
    /// The protobuf encoding, made from the JSON the first time a client asks for it (most
    /// objects are only ever read as JSON), then shared by every answer; the error if the
    /// object does not fit the kind's definitions.
    #[cfg(feature = "protobuf")]
    protobuf: std::sync::OnceLock<Result<crate::protobuf::Encoded, String>>,
}

impl PartialEq for Object {
    /// The fields the JSON encoding is made of, and the revision; the protobuf encoding
    /// is made from them.
    fn eq(&self, other: &Self) -> bool {
        let Self { namespace, name, labels, node_name, fields, uid, created, revision, tail, .. } = self;
        (namespace, name, labels, node_name, fields, uid, created, revision, tail)
            == (
                &other.namespace,
                &other.name,
                &other.labels,
                &other.node_name,
                &other.fields,
                &other.uid,
                &other.created,
                &other.revision,
                &other.tail,
            )
    }
}

impl Eq for Object {}

/// Who an object is, as the server assigns it on create and keeps on replace. Empty for
/// an object someone wrote to etcd without them (nothing is made up on read: every server
/// must read the same object).
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) uid: String,
    pub(crate) created: String,
}

impl Identity {
    /// A new object's identity: a random UID, created now.
    pub(crate) fn new() -> Self {
        Self {
            uid: uuid::Uuid::new_v4().to_string(),
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }
    }
}

/// What a request body says about the object, before the server accepts it.
#[derive(Debug, Clone)]
pub(crate) struct Submitted {
    body: Map<String, Value>,
    metadata: Map<String, Value>,
    /// `metadata.resourceVersion` as sent: a compare-and-swap precondition on replace.
    pub(crate) resource_version: Option<u64>,
    /// The fields a built-in kind does not have (kept; refused by a strict write).
    pub(crate) unknown_fields: Vec<String>,
}

impl Submitted {
    /// Parses a request body for `def`: a JSON object whose `kind` and `apiVersion`,
    /// when present, name this resource, and which decodes as the kind's type if it is
    /// a built-in one.
    pub(crate) fn parse(bytes: &[u8], def: &ResourceDef) -> Result<Self, ApiError> {
        Self::parse_as(bytes, def, Unknown::List)
    }

    fn parse_as(bytes: &[u8], def: &ResourceDef, unknown: Unknown) -> Result<Self, ApiError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|error| ApiError::bad_request(format!("request body is not valid json: {error}")))?;
        Self::read(value, def, unknown)
    }

    /// [`Self::parse`] of a body already parsed (a patched object).
    pub(crate) fn from_value(value: Value, def: &ResourceDef) -> Result<Self, ApiError> {
        Self::read(value, def, Unknown::List)
    }

    fn read(value: Value, def: &ResourceDef, unknown: Unknown) -> Result<Self, ApiError> {
        let not_an_object = || ApiError::bad_request("request body must be a json object");
        if !value.is_object() {
            return Err(not_an_object());
        }
        let (kind, api_version) = (def.kind.as_str(), def.api_version());
        for (field, expected) in [("kind", kind), ("apiVersion", &api_version)] {
            match value.get(field) {
                None => {}
                Some(Value::String(given)) if given == expected => {}
                Some(given) => {
                    return Err(ApiError::bad_request(format!("{field} {given} does not match {expected}")));
                }
            }
        }
        let unknown_fields = match def.builtin {
            None => Vec::new(),
            Some(builtin) => builtin.decodes(&value, unknown).map_err(|error| {
                ApiError::bad_request(format!(
                    "request body cannot be handled as a {api_version} {kind}: {error}"
                ))
            })?,
        };
        let Value::Object(mut body) = value else { return Err(not_an_object()) };
        body.remove("kind");
        body.remove("apiVersion");
        let metadata = match body.remove("metadata") {
            None => Map::new(),
            Some(Value::Object(metadata)) => metadata,
            Some(_) => return Err(ApiError::bad_request("metadata must be a json object")),
        };
        let resource_version = match metadata.get("resourceVersion") {
            None => None,
            Some(Value::String(text)) if text.is_empty() => None,
            Some(Value::String(text)) => Some(parse_resource_version(text)?),
            Some(_) => return Err(ApiError::bad_request("metadata.resourceVersion must be a string")),
        };
        Ok(Self { body, metadata, resource_version, unknown_fields })
    }

    /// `metadata.name` as sent, if it is a string.
    pub(crate) fn declared_name(&self) -> Option<&str> {
        self.metadata.get("name").and_then(Value::as_str)
    }

    /// The identity the body carries (a stored object's).
    fn stored_identity(&self) -> Identity {
        let field =
            |name: &str| self.metadata.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
        Identity { uid: field("uid"), created: field("creationTimestamp") }
    }

    /// `metadata.name`, or a name made from `metadata.generateName` and `uid` (checked
    /// with the rest of the object by [`Self::into_object`]).
    pub(crate) fn name(&self, def: &ResourceDef, uid: &str) -> Result<String, ApiError> {
        match (self.metadata.get("name"), self.metadata.get("generateName")) {
            (Some(Value::String(name)), _) if !name.is_empty() => Ok(name.clone()),
            (None | Some(Value::String(_)), Some(Value::String(prefix))) if !prefix.is_empty() => {
                let suffix: String = uid.chars().filter(|c| *c != '-').take(5).collect();
                Ok(format!("{prefix}{suffix}"))
            }
            (Some(Value::String(_)) | None, _) => {
                let required = FieldError::required("metadata.name", "name or generateName is required");
                Err(ApiError::invalid(&def.group_resource(), &def.kind, "", vec![required]))
            }
            (Some(_), _) => Err(ApiError::bad_request("metadata.name must be a string")),
        }
    }

    /// The stored object: this body of `def`, in `namespace` under `name`, with
    /// `identity`; 422 `Invalid` naming every field validation refuses.
    pub(crate) fn into_object(
        mut self,
        def: &ResourceDef,
        namespace: &str,
        name: String,
        identity: Identity,
    ) -> Result<Object, ApiError> {
        match self.metadata.get("namespace") {
            // A cluster-scoped object has none: what a client sent is dropped, as
            // Kubernetes drops it.
            Some(_) if !def.namespaced => {
                self.metadata.remove("namespace");
            }
            None => {}
            // Empty is unset, as Kubernetes reads it: the request's namespace.
            Some(Value::String(given)) if given.is_empty() || given == namespace => {}
            Some(given) => {
                return Err(ApiError::bad_request(format!(
                    "metadata.namespace {given} does not match the request's namespace {namespace}"
                )));
            }
        }
        let labels = match self.metadata.get("labels") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(labels)) => labels
                .iter()
                .map(|(key, value)| match value {
                    Value::String(value) => Ok((key.clone(), value.clone())),
                    _ => Err(ApiError::bad_request(format!("label {key} must have a string value"))),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(ApiError::bad_request("metadata.labels must be a json object")),
        };
        let refused: Vec<FieldError> = validation::object_name("metadata.name", &name)
            .err()
            .into_iter()
            .chain(validation::labels(&labels))
            .collect();
        if !refused.is_empty() {
            return Err(ApiError::invalid(&def.group_resource(), &def.kind, &name, refused));
        }
        if let Some(builtin) = def.builtin {
            builtin.complete(&mut self.body);
        }
        let fields = def
            .selectable_fields()
            .iter()
            .map(|(_, path)| crate::builtin::field_at(&self.body, path).to_owned())
            .collect();
        let node_name = if def.node_name {
            match self.body.get("spec").and_then(|spec| spec.get("nodeName")) {
                None | Some(Value::Null) => None,
                Some(Value::String(node)) => Some(node.clone()),
                Some(_) => return Err(ApiError::bad_request("spec.nodeName must be a string")),
            }
        } else {
            None
        };
        // Everything the server owns is set here; what the client sent for it is replaced.
        self.metadata.remove("resourceVersion");
        self.metadata.remove("generateName");
        self.metadata.insert("name".into(), Value::String(name.clone()));
        if def.namespaced {
            self.metadata.insert("namespace".into(), Value::String(namespace.into()));
        }
        for (field, value) in [("uid", &identity.uid), ("creationTimestamp", &identity.created)] {
            if value.is_empty() {
                self.metadata.remove(field);
            } else {
                self.metadata.insert(field.into(), Value::String(value.clone()));
            }
        }
        let tail = encode_tail(&self.metadata, &self.body);
        Ok(Object {
            namespace: namespace.into(),
            name,
            labels,
            node_name,
            fields,
            uid: identity.uid,
            created: identity.created,
            revision: 0,
            tail,
            #[cfg(feature = "protobuf")]
            protobuf: std::sync::OnceLock::new(),
        })
    }
}

/// The encoding after the `resourceVersion` value. `metadata` is not empty (it always
/// has a name), so its fields follow a comma.
fn encode_tail(metadata: &Map<String, Value>, rest: &Map<String, Value>) -> Bytes {
    let mut tail = BytesMut::with_capacity(256);
    tail.put_slice(b"\",");
    tail.put_slice(map_fields(metadata).as_bytes());
    tail.put_u8(b'}');
    if !rest.is_empty() {
        tail.put_u8(b',');
        tail.put_slice(map_fields(rest).as_bytes());
    }
    tail.put_u8(b'}');
    tail.freeze()
}

/// A JSON object's fields without its braces.
fn map_fields(map: &Map<String, Value>) -> String {
    let encoded = Value::Object(map.clone()).to_string();
    encoded[1..encoded.len() - 1].to_owned()
}

impl Object {
    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `metadata.labels`.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// `spec.nodeName` of a pod (`None` for other resources or when unset).
    pub fn node_name(&self) -> Option<&str> {
        self.node_name.as_deref()
    }

    /// The value of the resource's selectable field at `index` of
    /// [`ResourceDef::selectable_fields`] (empty when unset).
    pub(crate) fn selectable_field(&self, index: usize) -> &str {
        self.fields.get(index).map_or("", String::as_str)
    }

    /// The revision that last wrote this object (its `metadata.resourceVersion`).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// `metadata.uid` (empty if it has none).
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The object as etcd holds it: its JSON with an empty `resourceVersion` (the key's
    /// `mod_revision` is its revision), as kube-apiserver stores objects without one.
    pub(crate) fn to_stored(&self, head: &[u8]) -> Vec<u8> {
        let mut stored = Vec::with_capacity(head.len() + self.tail.len());
        stored.extend_from_slice(head);
        stored.extend_from_slice(&self.tail);
        stored
    }

    /// An object etcd holds at `revision` under `namespace`/`name`: one this server
    /// stored, or any JSON object of the resource someone else wrote there.
    pub(crate) fn from_stored(
        bytes: &[u8],
        revision: u64,
        def: &ResourceDef,
        (namespace, name): (&str, &str),
    ) -> Result<Self, ApiError> {
        let submitted = Submitted::parse_as(bytes, def, Unknown::Skip)?;
        let identity = submitted.stored_identity();
        let mut object = submitted.into_object(def, namespace, name.to_owned(), identity)?;
        object.revision = revision;
        Ok(object)
    }

    /// About the bytes the object holds: its encoding, and the fields kept apart from it
    /// for selection and identity. What the window's byte budget weighs.
    pub(crate) fn weight(&self) -> usize {
        let labels: usize = self.labels.iter().map(|(key, value)| key.len() + value.len()).sum();
        let identity = self.namespace.len() + self.name.len() + self.uid.len() + self.created.len();
        let fields: usize = self.fields.iter().map(String::len).sum();
        self.tail.len() + labels + identity + fields + self.node_name.as_ref().map_or(0, String::len)
    }

    pub(crate) fn set_revision(&mut self, revision: u64) {
        self.revision = revision;
    }

    /// The object as JSON at its own revision (what a patch applies to).
    pub(crate) fn to_value(&self, head: &[u8]) -> Value {
        let mut out = BytesMut::new();
        self.write_json(&mut out, head, self.revision);
        // The bytes were made from a `Value` by this module: they parse.
        serde_json::from_slice(&out).unwrap_or(Value::Null)
    }

    pub(crate) fn identity(&self) -> Identity {
        Identity { uid: self.uid.clone(), created: self.created.clone() }
    }

    /// The object's protobuf encoding (of `codec`'s kind, whose JSON encoding starts with
    /// `head`), made on the first call, which counts it in `encodes`.
    #[cfg(feature = "protobuf")]
    pub(crate) fn protobuf(
        &self,
        (codec, head): (&crate::protobuf::Codec, &[u8]),
        encodes: &prometheus_client::metrics::counter::Counter,
    ) -> Result<&crate::protobuf::Encoded, ApiError> {
        let encoded = self.protobuf.get_or_init(|| {
            encodes.inc();
            codec.encode(&self.to_value(head))
        });
        encoded.as_ref().map_err(|error| {
            ApiError::internal(format!(
                "{}/{} does not fit the protobuf definitions: {error}",
                self.namespace, self.name
            ))
        })
    }

    /// Writes the object's JSON with `revision` as its `resourceVersion`; `head` is the
    /// resource's part before that value.
    pub(crate) fn write_json(&self, out: &mut BytesMut, head: &[u8], revision: u64) {
        out.put_slice(head);
        // `BytesMut`'s `fmt::Write` cannot fail: it grows.
        let _ = write!(out, "{revision}");
        out.put_slice(&self.tail);
    }
}

/// Parses a `resourceVersion` as the client sent it.
pub(crate) fn parse_resource_version(text: &str) -> Result<u64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {text:?}: not a revision")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(body: &str) -> Object {
        let maps = ResourceDef::config_maps();
        let submitted = Submitted::parse(body.as_bytes(), &maps).unwrap();
        let identity = Identity { uid: "u-1".into(), created: "2026-01-01T00:00:00Z".into() };
        let name = submitted.name(&maps, &identity.uid).unwrap();
        submitted.into_object(&maps, "default", name, identity).unwrap()
    }

    /// What a body of `def` comes to, as a create in `default`.
    fn submit(def: &ResourceDef, body: &str) -> Result<Object, ApiError> {
        let submitted = Submitted::parse(body.as_bytes(), def)?;
        let name = submitted.name(def, "u")?;
        submitted.into_object(def, "default", name, Identity::new())
    }

    #[test]
    fn the_encoding_takes_any_revision_and_stays_valid_json() {
        let object = stored(
            r#"{"metadata":{"name":"a","labels":{"app":"x"},"resourceVersion":"9"},"data":{"k":"v"}}"#,
        );
        let head = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"resourceVersion":""#;
        for revision in [1, 42, u64::MAX] {
            let mut out = BytesMut::new();
            object.write_json(&mut out, head, revision);
            let value: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(value["metadata"]["resourceVersion"], revision.to_string());
            assert_eq!(value["metadata"]["name"], "a");
            assert_eq!(value["metadata"]["namespace"], "default");
            assert_eq!(value["metadata"]["uid"], "u-1");
            assert_eq!(value["metadata"]["labels"]["app"], "x");
            assert_eq!(value["data"]["k"], "v");
            assert_eq!(value["kind"], "ConfigMap");
        }
    }

    #[test]
    fn an_object_with_only_metadata_encodes() {
        let object = stored(r#"{"metadata":{"name":"b"}}"#);
        let mut out = BytesMut::new();
        object.write_json(&mut out, br#"{"metadata":{"resourceVersion":""#, 3);
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["metadata"]["name"], "b");
    }

    #[test]
    fn bodies_that_do_not_decode_are_400_with_a_reason() {
        let widgets = ResourceDef::parse("example.com/v1/widgets/Widget").unwrap();
        for (def, body, reason) in [
            (ResourceDef::config_maps(), "[1]", "must be a json object"),
            (ResourceDef::config_maps(), "{", "not valid json"),
            (ResourceDef::config_maps(), r#"{"kind":"Pod","metadata":{"name":"a"}}"#, "does not match"),
            (
                ResourceDef::config_maps(),
                r#"{"metadata":{"name":"a","labels":{"x":1}}}"#,
                "metadata.labels.x",
            ),
            (widgets.clone(), r#"{"metadata":{"name":"a","labels":{"x":1}}}"#, "string value"),
            (
                ResourceDef::config_maps(),
                r#"{"metadata":{"name":"a"},"data":{"k":1}}"#,
                "data.k: invalid type",
            ),
            (ResourceDef::config_maps(), r#"{"metadata":{"name":7}}"#, "metadata.name"),
            (widgets, r#"{"metadata":{"name":7}}"#, "metadata.name must be a string"),
            (
                ResourceDef::config_maps(),
                r#"{"metadata":{"name":"a","resourceVersion":"x"}}"#,
                "invalid resourceVersion",
            ),
            (
                ResourceDef::config_maps(),
                r#"{"metadata":{"name":"a","namespace":"other"}}"#,
                "does not match the request's namespace",
            ),
        ] {
            let error = submit(&def, body).expect_err(body);
            assert!(error.message().contains(reason), "{body}: {}", error.message());
            assert_eq!(error.code(), 400, "{body}");
        }
    }

    #[test]
    fn objects_that_do_not_validate_are_422_naming_every_field() {
        let maps = ResourceDef::config_maps();
        let error = submit(&maps, r#"{"metadata":{"name":"A_b","labels":{"-x":"v","y":"-"}}}"#).unwrap_err();
        let status = error.to_status();
        assert_eq!((status["code"].as_u64(), status["reason"].as_str()), (Some(422), Some("Invalid")));
        assert_eq!(status["details"]["kind"], "ConfigMap", "{status}");
        assert_eq!(status["details"]["name"], "A_b", "{status}");
        let causes: Vec<(&str, &str)> = status["details"]["causes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|cause| (cause["field"].as_str().unwrap(), cause["reason"].as_str().unwrap()))
            .collect();
        assert_eq!(
            causes,
            [
                ("metadata.name", "FieldValueInvalid"),
                ("metadata.labels", "FieldValueInvalid"),
                ("metadata.labels", "FieldValueInvalid")
            ]
        );
        assert!(error
            .message()
            .starts_with(r#"configmaps "A_b" is invalid: [metadata.name: invalid value "A_b""#));
        let unnamed = submit(&maps, r#"{"metadata":{}}"#).unwrap_err().to_status();
        assert_eq!(unnamed["code"], 422);
        assert_eq!(unnamed["details"]["causes"][0]["reason"], "FieldValueRequired");
        let widgets = ResourceDef::parse("example.com/v1/widgets/Widget").unwrap();
        let widget = submit(&widgets, r#"{"metadata":{"name":"W"}}"#).unwrap_err().to_status();
        assert_eq!(
            (widget["details"]["group"].as_str(), widget["details"]["kind"].as_str()),
            (Some("example.com"), Some("Widget"))
        );
    }

    #[test]
    fn the_stored_form_reads_back_as_the_same_object() {
        let object = stored(r#"{"metadata":{"name":"a","labels":{"app":"x"}},"data":{"k":"v"}}"#);
        let head = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"resourceVersion":""#;
        let bytes = object.to_stored(head);
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["metadata"]["resourceVersion"], "", "etcd's mod_revision is the revision");
        let maps = ResourceDef::config_maps();
        let read = Object::from_stored(&bytes, 7, &maps, ("default", "a")).unwrap();
        assert_eq!((read.revision(), read.uid(), read.labels()), (7, "u-1", object.labels()));
        let mut again = read;
        again.set_revision(0);
        assert_eq!(again, object, "the same encoding");
        // Someone else's JSON, without an identity: nothing is made up.
        let bare = Object::from_stored(br#"{"data":{"k":"v"}}"#, 9, &maps, ("default", "b")).unwrap();
        assert_eq!((bare.name(), bare.uid()), ("b", ""));
    }

    #[test]
    fn generate_name_appends_a_suffix() {
        let maps = ResourceDef::config_maps();
        let submitted = Submitted::parse(br#"{"metadata":{"generateName":"web-"}}"#, &maps).unwrap();
        let name = submitted.name(&maps, "abcde-123").unwrap();
        assert_eq!(name, "web-abcde");
    }
}
