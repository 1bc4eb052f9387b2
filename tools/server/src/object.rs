//! Objects as the server stores them: the fields selectors read, and the JSON encoded
//! once, when the object is written.
//!
//! The encoding is split around `metadata.resourceVersion`, the one field that differs
//! between the places an object is sent (its own revision in a list or an `ADDED` event;
//! the deleting revision in a `DELETED` event), so any revision is written into it by
//! copying bytes: an event reaching a thousand watchers is encoded once, as Kubernetes'
//! `cachingObject` does.

use crate::status::ApiError;
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
#[derive(Debug, PartialEq, Eq)]
pub struct Object {
    namespace: String,
    name: String,
    labels: BTreeMap<String, String>,
    /// `spec.nodeName`, read for pods (the field Kubernetes indexes pods by).
    node_name: Option<String>,
    uid: String,
    created: String,
    revision: u64,
    /// The encoding after the `resourceVersion` value: `"` then the rest of `metadata`
    /// and the rest of the object. The part before it depends only on the resource
    /// (`{"apiVersion":…,"kind":…,"metadata":{"resourceVersion":"`).
    tail: Bytes,
}

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
}

impl Submitted {
    /// Parses a request body for `kind`: a JSON object whose `kind` and `apiVersion`,
    /// when present, name this resource.
    pub(crate) fn parse(bytes: &[u8], kind: &str, api_version: &str) -> Result<Self, ApiError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|error| ApiError::bad_request(format!("request body is not valid json: {error}")))?;
        Self::from_value(value, kind, api_version)
    }

    /// [`Self::parse`] of a body already parsed (a patched object).
    pub(crate) fn from_value(value: Value, kind: &str, api_version: &str) -> Result<Self, ApiError> {
        let Value::Object(mut body) = value else {
            return Err(ApiError::bad_request("request body must be a json object"));
        };
        for (field, expected) in [("kind", kind), ("apiVersion", api_version)] {
            match body.get(field) {
                None => {}
                Some(Value::String(given)) if given == expected => {}
                Some(given) => {
                    return Err(ApiError::bad_request(format!("{field} {given} does not match {expected}")));
                }
            }
        }
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
        Ok(Self { body, metadata, resource_version })
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

    /// `metadata.name`, or a name made from `metadata.generateName` and `uid`.
    pub(crate) fn name(&self, uid: &str) -> Result<String, ApiError> {
        let name = match (self.metadata.get("name"), self.metadata.get("generateName")) {
            (Some(Value::String(name)), _) if !name.is_empty() => name.clone(),
            (None, Some(Value::String(prefix))) if !prefix.is_empty() => {
                let suffix: String = uid.chars().filter(|c| *c != '-').take(5).collect();
                format!("{prefix}{suffix}")
            }
            (Some(_), _) => return Err(ApiError::bad_request("metadata.name must be a non-empty string")),
            _ => return Err(ApiError::bad_request("metadata.name is required")),
        };
        validation::object_name("metadata.name", &name)?;
        Ok(name)
    }

    /// The stored object: this body, in `namespace` under `name`, with `identity`.
    pub(crate) fn into_object(
        mut self,
        namespace: &str,
        name: String,
        identity: Identity,
        node_name_field: bool,
    ) -> Result<Object, ApiError> {
        match self.metadata.get("namespace") {
            None => {}
            Some(Value::String(given)) if given == namespace => {}
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
        validation::labels(&labels)?;
        let node_name = if node_name_field {
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
        self.metadata.insert("namespace".into(), Value::String(namespace.into()));
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
            uid: identity.uid,
            created: identity.created,
            revision: 0,
            tail,
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
        (kind, api_version, node_name_field): (&str, &str, bool),
        (namespace, name): (&str, &str),
    ) -> Result<Self, ApiError> {
        let submitted = Submitted::parse(bytes, kind, api_version)?;
        let identity = submitted.stored_identity();
        let mut object = submitted.into_object(namespace, name.to_owned(), identity, node_name_field)?;
        object.revision = revision;
        Ok(object)
    }

    /// About the bytes the object holds: its encoding, and the fields kept apart from it
    /// for selection and identity. What the window's byte budget weighs.
    pub(crate) fn weight(&self) -> usize {
        let labels: usize = self.labels.iter().map(|(key, value)| key.len() + value.len()).sum();
        let identity = self.namespace.len() + self.name.len() + self.uid.len() + self.created.len();
        self.tail.len() + labels + identity + self.node_name.as_ref().map_or(0, String::len)
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
        let submitted = Submitted::parse(body.as_bytes(), "ConfigMap", "v1").unwrap();
        let identity = Identity { uid: "u-1".into(), created: "2026-01-01T00:00:00Z".into() };
        let name = submitted.name(&identity.uid).unwrap();
        submitted.into_object("default", name, identity, false).unwrap()
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
    fn bad_bodies_are_rejected_with_a_reason() {
        for (body, reason) in [
            ("[1]", "must be a json object"),
            ("{", "not valid json"),
            (r#"{"kind":"Pod","metadata":{"name":"a"}}"#, "does not match"),
            (r#"{"metadata":{"name":"A_b"}}"#, "invalid metadata.name"),
            (r#"{"metadata":{"name":"a","labels":{"x":1}}}"#, "string value"),
            (r#"{"metadata":{"name":"a","resourceVersion":"x"}}"#, "invalid resourceVersion"),
            (r#"{"metadata":{}}"#, "is required"),
            (r#"{"metadata":{"name":"a","namespace":"other"}}"#, "does not match the request's namespace"),
        ] {
            let result = Submitted::parse(body.as_bytes(), "ConfigMap", "v1").and_then(|submitted| {
                let name = submitted.name("u")?;
                submitted.into_object("default", name, Identity::new(), false)
            });
            let error = result.expect_err(body);
            assert!(error.message().contains(reason), "{body}: {}", error.message());
            assert_eq!(error.code(), 400);
        }
    }

    #[test]
    fn the_stored_form_reads_back_as_the_same_object() {
        let object = stored(r#"{"metadata":{"name":"a","labels":{"app":"x"}},"data":{"k":"v"}}"#);
        let head = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"resourceVersion":""#;
        let bytes = object.to_stored(head);
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["metadata"]["resourceVersion"], "", "etcd's mod_revision is the revision");
        let read = Object::from_stored(&bytes, 7, ("ConfigMap", "v1", false), ("default", "a")).unwrap();
        assert_eq!((read.revision(), read.uid(), read.labels()), (7, "u-1", object.labels()));
        let mut again = read;
        again.set_revision(0);
        assert_eq!(again, object, "the same encoding");
        // Someone else's JSON, without an identity: nothing is made up.
        let bare =
            Object::from_stored(br#"{"data":{"k":"v"}}"#, 9, ("ConfigMap", "v1", false), ("default", "b"))
                .unwrap();
        assert_eq!((bare.name(), bare.uid()), ("b", ""));
    }

    #[test]
    fn generate_name_appends_a_suffix() {
        let submitted =
            Submitted::parse(br#"{"metadata":{"generateName":"web-"}}"#, "ConfigMap", "v1").unwrap();
        let name = submitted.name("abcde-123").unwrap();
        assert_eq!(name, "web-abcde");
    }
}
