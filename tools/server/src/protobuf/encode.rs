//! Protobuf answers of the built-in kinds: an object, a list, a watch stream.
//!
//! An object's JSON form becomes its message as [`decode`](super::decode) reads one
//! back: an RFC 3339 string in a `Time` or `MicroTime` field becomes its seconds and
//! nanoseconds, a `Quantity` or `IntOrString` its message, base64 the `bytes`, the JSON
//! of a `RawExtension` or `FieldsV1` its raw bytes, and the fields of a struct Go embeds
//! inline (a probe's handler) the embedded message. Fields the definitions lack (ones
//! newer than them) are not in the message: such a client could not read them either.
//!
//! The object is encoded once, without its `resourceVersion` ([`Encoded`]); each answer
//! writes the revision it is sent at into `metadata` where the field belongs, by copying
//! bytes, as the JSON encoding takes it (see [`crate::object`]). A list is the kind's
//! `…List` message; a watch is a stream of `WatchEvent`s, each after its length as four
//! big-endian bytes, whose `object.raw` is the object in its envelope.

use super::{json_properties, message, CORE_V1, MAGIC, META_V1};
use crate::resource::ResourceDef;
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use prost::encoding::{encode_varint, encoded_len_varint};
use prost::Message;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage, Value as Proto,
};
use serde_json::{json, Map, Value};
use std::fmt::Write;

/// `metadata`, the first field of every object and list message.
const METADATA: u32 = 1;
/// `ObjectMeta.resourceVersion`.
const OBJECT_RESOURCE_VERSION: u32 = 6;
/// `ListMeta.resourceVersion` and `ListMeta.continue`.
const LIST_RESOURCE_VERSION: u32 = 2;
const LIST_CONTINUE: u32 = 3;
/// A list's `items`.
const ITEMS: u32 = 2;
/// `runtime.Unknown`: `typeMeta` (`TypeMeta`: `apiVersion`, `kind`) and `raw`.
const UNKNOWN_TYPE_META: u32 = 1;
const UNKNOWN_RAW: u32 = 2;
/// `WatchEvent`: `type`, `object` (a `RawExtension`, whose `raw` is field 1).
const EVENT_TYPE: u32 = 1;
const EVENT_OBJECT: u32 = 2;
const RAW_EXTENSION_RAW: u32 = 1;

/// One object's message without its `resourceVersion`, ready to be written at any
/// revision.
#[derive(Debug)]
pub(crate) struct Encoded {
    /// `metadata`'s fields before `resourceVersion`, `metadata`'s fields after it, then
    /// the object's other fields: the message's bytes but for `metadata`'s own header.
    bytes: Bytes,
    /// Where in `bytes` `resourceVersion` goes.
    resource_version_at: usize,
    /// Where in `bytes` `metadata` ends.
    metadata_end: usize,
}

impl Encoded {
    /// The message's length at `revision` (written as its decimal digits).
    fn len_at(&self, revision: u64) -> usize {
        let metadata = self.metadata_end + field_len(decimal_len(revision));
        field_len(metadata) + self.bytes.len() - self.metadata_end
    }

    fn write_at(&self, out: &mut BytesMut, revision: u64) {
        let metadata = self.metadata_end + field_len(decimal_len(revision));
        header(out, METADATA, metadata);
        out.put_slice(&self.bytes[..self.resource_version_at]);
        header(out, OBJECT_RESOURCE_VERSION, decimal_len(revision));
        // `BytesMut`'s `fmt::Write` cannot fail: it grows.
        let _ = write!(out, "{revision}");
        out.put_slice(&self.bytes[self.resource_version_at..]);
    }
}

/// One built-in kind's protobuf: its messages and its envelopes' `typeMeta`.
#[derive(Debug)]
pub(crate) struct Codec {
    object: MessageDescriptor,
    /// `Unknown.typeMeta`, whole (its header included), for an object and for a list.
    object_type: Bytes,
    list_type: Bytes,
}

impl Codec {
    /// The codec of `def`; `None` for a custom resource (the definitions have no message
    /// of it).
    pub(crate) fn new(def: &ResourceDef) -> Option<Self> {
        def.builtin?;
        let api_version = def.api_version();
        Some(Self {
            object: message(&format!("{CORE_V1}.{}", def.kind)),
            object_type: type_meta(&api_version, &def.kind),
            list_type: type_meta(&api_version, &format!("{}List", def.kind)),
        })
    }

    /// The message of `object`, the kind's JSON form (its `resourceVersion`, if any, is
    /// left out); `Err` names the first value that does not fit the definitions.
    pub(crate) fn encode(&self, object: &Value) -> Result<Encoded, String> {
        let Value::Object(fields) = object else { return Err("the object is not a json object".into()) };
        let mut whole = message_of(fields, &self.object, "")?;
        let metadata = match whole.take_field_by_number(METADATA) {
            Some(Proto::Message(metadata)) => metadata,
            _ => DynamicMessage::new(message(&format!("{META_V1}.ObjectMeta"))),
        };
        let mut before = DynamicMessage::new(metadata.descriptor());
        let mut after = DynamicMessage::new(metadata.descriptor());
        for (field, value) in metadata.fields() {
            match field.number() {
                number if number < OBJECT_RESOURCE_VERSION => before.set_field(&field, value.clone()),
                number if number > OBJECT_RESOURCE_VERSION => after.set_field(&field, value.clone()),
                _ => {}
            }
        }
        let mut bytes = BytesMut::new();
        before.encode(&mut bytes).map_err(|error| error.to_string())?;
        let resource_version_at = bytes.len();
        after.encode(&mut bytes).map_err(|error| error.to_string())?;
        let metadata_end = bytes.len();
        whole.encode(&mut bytes).map_err(|error| error.to_string())?;
        Ok(Encoded { bytes: bytes.freeze(), resource_version_at, metadata_end })
    }

    /// An object answer: `object` at `revision`, in its envelope.
    pub(crate) fn object(&self, out: &mut BytesMut, object: &Encoded, revision: u64) {
        envelope(out, &self.object_type, object.len_at(revision), |out| object.write_at(out, revision));
    }

    /// A list answer: `items`, each at its revision, listed at `revision`, with the
    /// token that continues it.
    pub(crate) fn list(
        &self,
        out: &mut BytesMut,
        items: &[(&Encoded, u64)],
        revision: u64,
        next: Option<&str>,
    ) {
        let list_meta = field_len(decimal_len(revision)) + next.map_or(0, |next| field_len(next.len()));
        let raw_len = field_len(list_meta)
            + items.iter().map(|(item, revision)| field_len(item.len_at(*revision))).sum::<usize>();
        envelope(out, &self.list_type, raw_len, |out| {
            header(out, METADATA, list_meta);
            header(out, LIST_RESOURCE_VERSION, decimal_len(revision));
            let _ = write!(out, "{revision}");
            if let Some(next) = next {
                header(out, LIST_CONTINUE, next.len());
                out.put_slice(next.as_bytes());
            }
            for (item, revision) in items {
                header(out, ITEMS, item.len_at(*revision));
                item.write_at(out, *revision);
            }
        });
    }

    /// A watch event of `kind` (`ADDED`, `MODIFIED`, `DELETED`): `object` at `revision`.
    pub(crate) fn event(&self, out: &mut BytesMut, kind: &str, object: &Encoded, revision: u64) {
        let raw_len = object.len_at(revision);
        frame(out, kind, envelope_len(&self.object_type, raw_len), |out| {
            envelope(out, &self.object_type, raw_len, |out| object.write_at(out, revision));
        });
    }

    /// A `BOOKMARK` event at `revision`: an object of the kind with only its
    /// `resourceVersion` (and the annotation that ends the initial events, if it does).
    pub(crate) fn bookmark(&self, out: &mut BytesMut, revision: u64, initial_events_end: bool) {
        let mut metadata = json!({ "resourceVersion": revision.to_string() });
        if initial_events_end {
            metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        let object = json!({ "metadata": metadata });
        self.framed(out, "BOOKMARK", &self.object_type, &self.object, &object);
    }

    /// An `ERROR` event holding `status` (a `Status`'s JSON form).
    pub(crate) fn error_event(&self, out: &mut BytesMut, status: &Value) {
        let status_type = type_meta("v1", "Status");
        self.framed(out, "ERROR", &status_type, &message(&format!("{META_V1}.Status")), status);
    }

    /// An event of `kind` holding `object` (JSON) as a message of `descriptor`. Both are
    /// the server's own (a bookmark, a `Status`), which fit their definitions.
    fn framed(
        &self,
        out: &mut BytesMut,
        kind: &str,
        type_meta: &[u8],
        descriptor: &MessageDescriptor,
        object: &Value,
    ) {
        let raw = match object {
            Value::Object(fields) => {
                message_of(fields, descriptor, "").map(|message| message.encode_to_vec())
            }
            _ => Ok(Vec::new()),
        }
        .unwrap_or_default();
        frame(out, kind, envelope_len(type_meta, raw.len()), |out| {
            envelope(out, type_meta, raw.len(), |out| out.put_slice(&raw));
        });
    }
}

/// `Unknown.typeMeta` naming `kind` of `api_version`, its header included.
fn type_meta(api_version: &str, kind: &str) -> Bytes {
    let mut out = BytesMut::new();
    header(&mut out, UNKNOWN_TYPE_META, field_len(api_version.len()) + field_len(kind.len()));
    header(&mut out, 1, api_version.len());
    out.put_slice(api_version.as_bytes());
    header(&mut out, 2, kind.len());
    out.put_slice(kind.as_bytes());
    out.freeze()
}

fn envelope_len(type_meta: &[u8], raw_len: usize) -> usize {
    MAGIC.len() + type_meta.len() + field_len(raw_len)
}

/// The envelope around a `raw_len`-byte message that `write_raw` writes.
fn envelope(out: &mut BytesMut, type_meta: &[u8], raw_len: usize, write_raw: impl FnOnce(&mut BytesMut)) {
    out.reserve(envelope_len(type_meta, raw_len));
    out.put_slice(MAGIC);
    out.put_slice(type_meta);
    header(out, UNKNOWN_RAW, raw_len);
    write_raw(out);
}

/// A watch stream's frame: the `WatchEvent`'s length, then the event of `kind` whose
/// object is the `envelope_len`-byte envelope `write_envelope` writes.
fn frame(out: &mut BytesMut, kind: &str, envelope_len: usize, write_envelope: impl FnOnce(&mut BytesMut)) {
    let object_len = field_len(envelope_len);
    let event_len = field_len(kind.len()) + field_len(object_len);
    // Frames are bounded by the server's object sizes, far below 4 GiB.
    out.put_u32(u32::try_from(event_len).unwrap_or(u32::MAX));
    header(out, EVENT_TYPE, kind.len());
    out.put_slice(kind.as_bytes());
    header(out, EVENT_OBJECT, object_len);
    header(out, RAW_EXTENSION_RAW, envelope_len);
    write_envelope(out);
}

/// A length-delimited field's tag and length. Every field written here has a number
/// below 16: its tag is one byte.
fn header(out: &mut BytesMut, field: u32, len: usize) {
    out.put_u8((field << 3 | 2) as u8);
    encode_varint(len as u64, out);
}

/// The bytes of a length-delimited field (below 16) holding `len` bytes.
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn decimal_len(number: u64) -> usize {
    number.checked_ilog10().map_or(1, |digits| digits as usize + 1)
}

/// `json` as a message of `descriptor`; `path` names it in an error.
fn message_of(
    json: &Map<String, Value>,
    descriptor: &MessageDescriptor,
    path: &str,
) -> Result<DynamicMessage, String> {
    let mut message = DynamicMessage::new(descriptor.clone());
    let properties = json_properties().get(descriptor.full_name());
    for field in descriptor.fields() {
        let child =
            if path.is_empty() { field.name().to_owned() } else { format!("{path}.{}", field.name()) };
        let embedded = properties.is_some_and(|properties| !properties.contains(field.name()));
        let value = match (field.kind(), embedded && !field.is_list()) {
            // A struct Go embeds inline: its fields are this object's.
            (Kind::Message(inline), true) => {
                let inline = message_of(json, &inline, path)?;
                if inline.fields().next().is_none() {
                    continue;
                }
                Proto::Message(inline)
            }
            _ => match json.get(field.name()) {
                None | Some(Value::Null) => continue,
                Some(value) => field_value(value, &field, &child)?,
            },
        };
        message.set_field(&field, value);
    }
    Ok(message)
}

/// One field's value: a list, a map or a single value.
fn field_value(json: &Value, field: &FieldDescriptor, path: &str) -> Result<Proto, String> {
    let kind = field.kind();
    if field.is_map() {
        let Value::Object(entries) = json else { return Err(format!("{path} is not a json object")) };
        let Kind::Message(entry) = &kind else { return Err(format!("{path} is not a map")) };
        let value_kind = entry.map_entry_value_field().kind();
        return entries
            .iter()
            .map(|(key, value)| Ok((MapKey::String(key.clone()), single(value, &value_kind, path)?)))
            .collect::<Result<_, String>>()
            .map(Proto::Map);
    }
    if field.is_list() {
        let Value::Array(values) = json else { return Err(format!("{path} is not a json array")) };
        return values
            .iter()
            .map(|value| single(value, &kind, path))
            .collect::<Result<_, _>>()
            .map(Proto::List);
    }
    single(json, &kind, path)
}

fn single(json: &Value, kind: &Kind, path: &str) -> Result<Proto, String> {
    let mismatch = || format!("{path} is {json}, which does not fit {kind:?}");
    let integer = || json.as_i64().ok_or_else(mismatch);
    Ok(match kind {
        Kind::String => Proto::String(json.as_str().ok_or_else(mismatch)?.to_owned()),
        Kind::Bool => Proto::Bool(json.as_bool().ok_or_else(mismatch)?),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Proto::I32(integer()?.try_into().map_err(|_| mismatch())?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Proto::I64(integer()?),
        Kind::Uint32 | Kind::Fixed32 => Proto::U32(integer()?.try_into().map_err(|_| mismatch())?),
        Kind::Uint64 | Kind::Fixed64 => Proto::U64(json.as_u64().ok_or_else(mismatch)?),
        Kind::Double => Proto::F64(json.as_f64().ok_or_else(mismatch)?),
        Kind::Float => Proto::F32(json.as_f64().ok_or_else(mismatch)? as f32),
        Kind::Bytes => Proto::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(json.as_str().ok_or_else(mismatch)?)
                .map_err(|_| mismatch())?
                .into(),
        ),
        Kind::Enum(_) => return Err(mismatch()),
        Kind::Message(descriptor) => Proto::Message(special(json, descriptor, path)?),
    })
}

/// A message field's value: one of the types Kubernetes writes in JSON its own way, or
/// an object.
fn special(json: &Value, descriptor: &MessageDescriptor, path: &str) -> Result<DynamicMessage, String> {
    let mismatch = || format!("{path} is {json}, which does not fit {}", descriptor.full_name());
    let mut message = DynamicMessage::new(descriptor.clone());
    match descriptor.full_name().strip_prefix("k8s.io.apimachinery.pkg.") {
        Some("apis.meta.v1.Time" | "apis.meta.v1.MicroTime") => {
            let at: jiff::Timestamp = json.as_str().ok_or_else(mismatch)?.parse().map_err(|_| mismatch())?;
            message.set_field_by_name("seconds", Proto::I64(at.as_second()));
            if at.subsec_nanosecond() != 0 {
                message.set_field_by_name("nanos", Proto::I32(at.subsec_nanosecond()));
            }
        }
        Some("api.resource.Quantity") => {
            let quantity = match json {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                _ => return Err(mismatch()),
            };
            message.set_field_by_name("string", Proto::String(quantity));
        }
        Some("util.intstr.IntOrString") => match json {
            Value::String(text) => {
                message.set_field_by_name("type", Proto::I64(1));
                message.set_field_by_name("strVal", Proto::String(text.clone()));
            }
            number => {
                let number =
                    number.as_i64().and_then(|number| i32::try_from(number).ok()).ok_or_else(mismatch)?;
                message.set_field_by_name("type", Proto::I64(0));
                message.set_field_by_name("intVal", Proto::I32(number));
            }
        },
        Some("runtime.RawExtension") => {
            message.set_field_by_name("raw", Proto::Bytes(json.to_string().into_bytes().into()));
        }
        Some("apis.meta.v1.FieldsV1") => {
            message.set_field_by_name("Raw", Proto::Bytes(json.to_string().into_bytes().into()));
        }
        _ => {
            let Value::Object(fields) = json else { return Err(mismatch()) };
            return message_of(fields, descriptor, path);
        }
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protobuf::decode;

    /// `object` written at `revision` in its envelope, read back as a request body.
    fn round_trip(def: &ResourceDef, object: &Value, revision: u64) -> Value {
        let codec = Codec::new(def).unwrap();
        let encoded = codec.encode(object).unwrap();
        let mut out = BytesMut::new();
        codec.object(&mut out, &encoded, revision);
        let (value, unknown) = decode(&out, def).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        value
    }

    fn at(mut object: Value, revision: u64) -> Value {
        object["metadata"]["resourceVersion"] = json!(revision.to_string());
        object
    }

    #[test]
    fn an_object_reads_back_the_same_at_any_revision() {
        let map = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": "web", "namespace": "default", "uid": "u-1", "generation": 3,
                "labels": { "app": "x" }, "annotations": { "note": "" },
                "creationTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["a", "b"],
                "managedFields": [{ "manager": "kubectl", "operation": "Update", "time": "2026-01-01T00:00:01Z",
                                    "fieldsType": "FieldsV1", "fieldsV1": { "f:data": {} } }],
            },
            "data": { "a": "1", "empty": "" },
            "binaryData": { "b": "AAEC" },
            "immutable": true,
        });
        for revision in [0, 7, 127, 128, 16_384, u64::MAX] {
            assert_eq!(round_trip(&ResourceDef::config_maps(), &map, revision), at(map.clone(), revision));
        }
    }

    #[test]
    fn a_pods_special_types_read_back_the_same() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "p", "namespace": "default" },
            "spec": {
                "containers": [{
                    "name": "web", "image": "nginx",
                    "ports": [{ "containerPort": 80, "protocol": "TCP" }],
                    "resources": { "limits": { "cpu": "500m", "memory": "1Gi" } },
                    "readinessProbe": { "httpGet": { "port": "http", "path": "/" }, "periodSeconds": 5 },
                    "livenessProbe": { "tcpSocket": { "port": 8080 } },
                    "securityContext": { "runAsUser": 0, "privileged": false },
                }],
                "volumes": [{ "name": "v", "emptyDir": {} }, { "name": "c", "configMap": { "name": "web" } }],
                "nodeName": "node-1",
            },
            "status": {
                "phase": "Running",
                "startTime": "2026-01-01T00:00:00Z",
                "conditions": [{ "type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:02Z" }],
            },
        });
        assert_eq!(round_trip(&ResourceDef::pods(), &pod, 42), at(pod, 42));
    }

    /// The first message of `descriptor` in `bytes`, after the envelope.
    fn unwrap_envelope(bytes: &[u8], kind: &str) -> bytes::Bytes {
        let unknown =
            DynamicMessage::decode(message("k8s.io.apimachinery.pkg.runtime.Unknown"), &bytes[MAGIC.len()..])
                .unwrap();
        let type_meta = unknown.get_field_by_name("typeMeta").unwrap();
        let type_meta = type_meta.as_message().unwrap();
        assert_eq!(type_meta.get_field_by_name("kind").unwrap().as_str(), Some(kind));
        unknown.get_field_by_name("raw").unwrap().as_bytes().unwrap().clone()
    }

    #[test]
    fn a_list_holds_each_item_at_its_own_revision() {
        let codec = Codec::new(&ResourceDef::config_maps()).unwrap();
        let objects: Vec<Encoded> = ["a", "b"]
            .iter()
            .map(|name| codec.encode(&json!({ "metadata": { "name": name }, "data": { "k": "v" } })).unwrap())
            .collect();
        let mut out = BytesMut::new();
        codec.list(&mut out, &[(&objects[0], 3), (&objects[1], 300)], 301, Some("next-page"));
        let raw = unwrap_envelope(&out, "ConfigMapList");
        let list = DynamicMessage::decode(message(&format!("{CORE_V1}.ConfigMapList")), raw).unwrap();
        let list_meta = list.get_field_by_name("metadata").unwrap();
        let list_meta = list_meta.as_message().unwrap();
        assert_eq!(list_meta.get_field_by_name("resourceVersion").unwrap().as_str(), Some("301"));
        assert_eq!(list_meta.get_field_by_name("continue").unwrap().as_str(), Some("next-page"));
        let items = list.get_field_by_name("items").unwrap();
        let revisions: Vec<(String, String)> = items
            .as_list()
            .unwrap()
            .iter()
            .map(|item| {
                let metadata = item.as_message().unwrap().get_field_by_name("metadata").unwrap();
                let metadata = metadata.as_message().unwrap();
                let text =
                    |field: &str| metadata.get_field_by_name(field).unwrap().as_str().unwrap().to_owned();
                (text("name"), text("resourceVersion"))
            })
            .collect();
        assert_eq!(revisions, [("a".into(), "3".into()), ("b".into(), "300".into())]);
    }

    /// The frames of a watch stream, each as its type and its object's envelope.
    fn frames(mut stream: &[u8]) -> Vec<(String, bytes::Bytes)> {
        let mut frames = Vec::new();
        while !stream.is_empty() {
            let len = u32::from_be_bytes(stream[..4].try_into().unwrap()) as usize;
            let event =
                DynamicMessage::decode(message(&format!("{META_V1}.WatchEvent")), &stream[4..4 + len])
                    .unwrap();
            let kind = event.get_field_by_name("type").unwrap().as_str().unwrap().to_owned();
            let object = event.get_field_by_name("object").unwrap();
            let raw =
                object.as_message().unwrap().get_field_by_name("raw").unwrap().as_bytes().unwrap().clone();
            frames.push((kind, raw));
            stream = &stream[4 + len..];
        }
        frames
    }

    #[test]
    fn watch_events_are_length_prefixed_frames_of_enveloped_objects() {
        let maps = ResourceDef::config_maps();
        let codec = Codec::new(&maps).unwrap();
        let object = json!({ "metadata": { "name": "web" }, "data": { "k": "v" } });
        let encoded = codec.encode(&object).unwrap();
        let mut out = BytesMut::new();
        codec.event(&mut out, "MODIFIED", &encoded, 9);
        codec.bookmark(&mut out, 10, true);
        codec.error_event(&mut out, &crate::status::ApiError::expired(3, 5).to_status());
        let frames = frames(&out);
        let kinds: Vec<&str> = frames.iter().map(|(kind, _)| kind.as_str()).collect();
        assert_eq!(kinds, ["MODIFIED", "BOOKMARK", "ERROR"]);
        assert_eq!(
            decode(&frames[0].1, &maps).unwrap().0,
            at(object, 9)
                .as_object()
                .map(|fields| {
                    let mut fields = fields.clone();
                    fields.insert("apiVersion".into(), json!("v1"));
                    fields.insert("kind".into(), json!("ConfigMap"));
                    Value::Object(fields)
                })
                .unwrap()
        );
        let bookmark = decode(&frames[1].1, &maps).unwrap().0;
        assert_eq!(bookmark["metadata"]["resourceVersion"], "10");
        assert_eq!(bookmark["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
        let raw = unwrap_envelope(&frames[2].1, "Status");
        let status = DynamicMessage::decode(message(&format!("{META_V1}.Status")), raw).unwrap();
        assert_eq!(status.get_field_by_name("code").unwrap().as_i32(), Some(410));
        assert_eq!(status.get_field_by_name("reason").unwrap().as_str(), Some("Expired"));
    }

    #[test]
    fn a_value_that_does_not_fit_the_definitions_is_named() {
        let codec = Codec::new(&ResourceDef::config_maps()).unwrap();
        let error = codec.encode(&json!({ "metadata": { "name": "web" }, "data": { "k": 1 } })).unwrap_err();
        assert!(error.contains("data is 1"), "{error}");
        assert!(Codec::new(&ResourceDef::parse("example.com/v1/widgets/Widget").unwrap()).is_none());
    }
}
