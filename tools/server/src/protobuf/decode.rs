//! Protobuf request bodies of the built-in kinds (`Content-Type:
//! application/vnd.kubernetes.protobuf`), as current kubectl and every client-go
//! component configured for protobuf send them: the four bytes `k8s\0`, then a
//! `runtime.Unknown` whose `typeMeta` names the kind and whose `raw` is the object,
//! encoded by Kubernetes' own `.proto` definitions (compiled by `build.rs`).
//!
//! A body becomes the object's JSON form, as Kubernetes' JSON encoding writes the same
//! Go value, and then takes the JSON path (the kind's decode, validation, storage):
//! a `Time` is an RFC 3339 string (a `MicroTime` with microseconds, the zero time
//! omitted), a `Quantity` its string, an `IntOrString` a number or a string, `bytes` are
//! base64, a `RawExtension` or `FieldsV1` the JSON it holds. Kubernetes' Go types write
//! every non-pointer field, set or not: an empty string stands for an unset field and is
//! left out, as Go's JSON encoding leaves out an empty `omitempty` string (map values and
//! list elements are kept: a configmap's value may be empty). Zero numbers and `false`
//! are kept, since a pointer field set to zero (a container's `runAsUser: 0`) means what
//! it says. A struct Go embeds inline (a probe's handler, a volume's source) is a field
//! of its own in protobuf, named after its type; its fields are the object's in JSON,
//! told apart by the kind's JSON schema, which lacks a property of that name. Fields the
//! definitions do not have (a client newer than the definitions, or
//! garbage) are reported by number, for `fieldValidation` to warn about or refuse.
//!
//! Refused with 400 `BadRequest`, storing nothing: a body without the prefix, one that
//! does not decode (truncated, not protobuf), an envelope naming another kind or
//! encoding, a field of the wrong wire type.

use super::{json_properties, message, CORE_V1, MAGIC, META_V1};
use crate::negotiation::PROTOBUF;
use crate::status::ApiError;
use crate::ResourceDef;
use base64::Engine;
use prost_reflect::{DynamicMessage, MapKey, ReflectMessage, Value as Proto};
use serde_json::{Map, Value};

/// A protobuf body of `def` (a built-in kind), as the object's JSON form, with the
/// fields the definitions do not have, by path and number.
pub(crate) fn decode(body: &[u8], def: &ResourceDef) -> Result<(Value, Vec<String>), ApiError> {
    let message = format!("{CORE_V1}.{}", def.kind);
    decode_as(body, (&def.kind, &[&def.api_version()]), &message)
}

/// A protobuf `DeleteOptions` (a client's delete body), as its JSON form.
pub(crate) fn decode_delete_options(body: &[u8]) -> Result<Value, ApiError> {
    // Sent in the group-version of the resource's client, or in meta's.
    let (value, _) =
        decode_as(body, ("DeleteOptions", &["v1", "meta.k8s.io/v1"]), &format!("{META_V1}.DeleteOptions"))?;
    Ok(value)
}

/// A body in the envelope, which must hold a `kind` of one of `api_versions`, encoded as
/// `message`.
fn decode_as(
    body: &[u8],
    (expected_kind, api_versions): (&str, &[&str]),
    message_name: &str,
) -> Result<(Value, Vec<String>), ApiError> {
    let refused = |why: String| {
        ApiError::bad_request(format!("request body is not a valid protobuf {expected_kind}: {why}"))
    };
    let envelope =
        body.strip_prefix(MAGIC).ok_or_else(|| refused("it does not start with the k8s\\0 prefix".into()))?;
    let unknown = DynamicMessage::decode(message("k8s.io.apimachinery.pkg.runtime.Unknown"), envelope)
        .map_err(|error| refused(format!("the envelope does not decode: {error}")))?;
    let text = |message: &DynamicMessage, field: &str| match message.get_field_by_name(field).as_deref() {
        Some(Proto::String(text)) => text.clone(),
        _ => String::new(),
    };
    let type_meta = match unknown.get_field_by_name("typeMeta").as_deref() {
        Some(Proto::Message(type_meta)) => type_meta.clone(),
        _ => return Err(refused("the envelope names no kind".into())),
    };
    let (kind, api_version) = (text(&type_meta, "kind"), text(&type_meta, "apiVersion"));
    if kind != expected_kind || !api_versions.contains(&api_version.as_str()) {
        return Err(refused(format!("the envelope holds a {api_version} {kind}")));
    }
    let encoding = text(&unknown, "contentEncoding");
    let content_type = text(&unknown, "contentType");
    if !encoding.is_empty() || !(content_type.is_empty() || content_type == PROTOBUF) {
        return Err(refused(format!("the object is encoded as {content_type:?} {encoding:?}")));
    }
    let raw = match unknown.get_field_by_name("raw").as_deref() {
        Some(Proto::Bytes(raw)) => raw.clone(),
        _ => bytes::Bytes::new(),
    };
    let object = DynamicMessage::decode(message(message_name), raw)
        .map_err(|error| refused(format!("the object does not decode: {error}")))?;
    let mut unknown_fields = Vec::new();
    let mut value = to_json(&object, "", &mut unknown_fields).map_err(refused)?;
    if let Value::Object(fields) = &mut value {
        fields.insert("apiVersion".into(), Value::String(api_version));
        fields.insert("kind".into(), Value::String(kind));
    }
    Ok((value, unknown_fields))
}

/// `message` as Kubernetes' JSON encoding writes it; `path` names it in `unknown`.
fn to_json(message: &DynamicMessage, path: &str, unknown: &mut Vec<String>) -> Result<Value, String> {
    let descriptor = message.descriptor();
    let name = descriptor.full_name();
    let field = |field: &str| message.get_field_by_name(field);
    match name.strip_prefix("k8s.io.apimachinery.pkg.") {
        Some("apis.meta.v1.Time") => return Ok(time(message, "%Y-%m-%dT%H:%M:%SZ")),
        Some("apis.meta.v1.MicroTime") => return Ok(time(message, "%Y-%m-%dT%H:%M:%S%.6fZ")),
        Some("api.resource.Quantity") => {
            return Ok(match field("string").as_deref() {
                Some(Proto::String(quantity)) => Value::String(quantity.clone()),
                _ => Value::Null,
            })
        }
        Some("util.intstr.IntOrString") => {
            return Ok(
                match (field("type").as_deref(), field("intVal").as_deref(), field("strVal").as_deref()) {
                    (Some(Proto::I64(1)), _, Some(Proto::String(text))) => Value::String(text.clone()),
                    (_, Some(Proto::I32(number)), _) => Value::from(*number),
                    _ => Value::from(0),
                },
            )
        }
        Some("runtime.RawExtension") | Some("apis.meta.v1.FieldsV1") => {
            let raw = ["raw", "Raw"].into_iter().find_map(|name| match field(name).as_deref() {
                Some(Proto::Bytes(raw)) => Some(raw.clone()),
                _ => None,
            });
            return match raw {
                None => Ok(Value::Null),
                Some(raw) => {
                    serde_json::from_slice(&raw).map_err(|error| format!("{path} is not json: {error}"))
                }
            };
        }
        _ => {}
    }
    for field in message.unknown_fields() {
        unknown.push(format!("{}field {}", dotted(path), field.number()));
    }
    let properties = json_properties().get(name);
    let object_meta = name.strip_prefix(META_V1) == Some(".ObjectMeta");
    let mut object = Map::new();
    for (descriptor, value) in message.fields() {
        let child = format!("{}{}", dotted(path), descriptor.name());
        let converted = match value {
            // Go's zero value of a non-pointer string field: unset.
            Proto::String(text) if text.is_empty() => continue,
            // Set by the server only; zero until then.
            Proto::I64(0) if object_meta && descriptor.name() == "generation" => continue,
            other => element(other, &child, unknown)?,
        };
        // The zero time is `null` in Kubernetes' JSON: unset.
        if converted.is_null() {
            continue;
        }
        let embedded = matches!(value, Proto::Message(_))
            && properties.is_some_and(|properties| !properties.contains(descriptor.name()));
        match converted {
            Value::Object(fields) if embedded => object.extend(fields),
            converted => {
                object.insert(descriptor.name().to_owned(), converted);
            }
        }
    }
    Ok(Value::Object(object))
}

fn dotted(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}.")
    }
}

/// One value (a field's, a list element, a map value) as JSON.
fn element(value: &Proto, path: &str, unknown: &mut Vec<String>) -> Result<Value, String> {
    Ok(match value {
        Proto::Bool(flag) => Value::Bool(*flag),
        Proto::I32(number) | Proto::EnumNumber(number) => Value::from(*number),
        Proto::I64(number) => Value::from(*number),
        Proto::U32(number) => Value::from(*number),
        Proto::U64(number) => Value::from(*number),
        Proto::F32(number) => Value::from(f64::from(*number)),
        Proto::F64(number) => Value::from(*number),
        Proto::String(text) => Value::String(text.clone()),
        Proto::Bytes(bytes) => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        Proto::Message(message) => to_json(message, path, unknown)?,
        Proto::List(values) => {
            Value::Array(values.iter().map(|value| element(value, path, unknown)).collect::<Result<_, _>>()?)
        }
        Proto::Map(entries) => {
            let mut object = Map::new();
            for (key, value) in entries {
                let key = match key {
                    MapKey::String(key) => key.clone(),
                    other => format!("{other:?}"),
                };
                object.insert(key, element(value, path, unknown)?);
            }
            Value::Object(object)
        }
    })
}

/// A `Time` or `MicroTime` in `format`; the zero time (unset) is `null`.
fn time(message: &DynamicMessage, format: &str) -> Value {
    let number = |field: &str| match message.get_field_by_name(field).as_deref() {
        Some(Proto::I64(number)) => *number,
        Some(Proto::I32(number)) => i64::from(*number),
        _ => 0,
    };
    let (seconds, nanos) = (number("seconds"), number("nanos"));
    // Go's zero time, 0001-01-01T00:00:00Z, and an unset one.
    if seconds == -62_135_596_800 || (seconds == 0 && nanos == 0) {
        return Value::Null;
    }
    match jiff::Timestamp::new(seconds, nanos as i32) {
        Ok(at) => Value::String(at.strftime(format).to_string()),
        Err(_) => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use serde_json::json;

    /// `fields` (a JSON object) set on a new message of `name`, by the same definitions.
    fn build(name: &str, fields: &Value) -> DynamicMessage {
        let mut built = DynamicMessage::new(message(name));
        for (field, value) in fields.as_object().unwrap() {
            let descriptor =
                built.descriptor().get_field_by_name(field).unwrap_or_else(|| panic!("{name}.{field}"));
            let value = proto_of(&descriptor.kind(), descriptor.is_list(), descriptor.is_map(), value);
            built.set_field(&descriptor, value);
        }
        built
    }

    fn proto_of(kind: &prost_reflect::Kind, list: bool, map: bool, value: &Value) -> Proto {
        use prost_reflect::Kind;
        if list {
            return Proto::List(
                value.as_array().unwrap().iter().map(|value| proto_of(kind, false, false, value)).collect(),
            );
        }
        if map {
            let Kind::Message(entry) = kind else { unreachable!() };
            let value_kind = entry.map_entry_value_field().kind();
            return Proto::Map(
                value
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(key, value)| {
                        (MapKey::String(key.clone()), proto_of(&value_kind, false, false, value))
                    })
                    .collect(),
            );
        }
        match (kind, value) {
            (Kind::String, Value::String(text)) => Proto::String(text.clone()),
            (Kind::Bytes, Value::String(text)) => Proto::Bytes(text.clone().into_bytes().into()),
            (Kind::Bool, Value::Bool(flag)) => Proto::Bool(*flag),
            (Kind::Int32, Value::Number(number)) => Proto::I32(number.as_i64().unwrap() as i32),
            (Kind::Int64, Value::Number(number)) => Proto::I64(number.as_i64().unwrap()),
            (Kind::Message(descriptor), fields) => Proto::Message(build(descriptor.full_name(), fields)),
            other => panic!("no test conversion for {other:?}"),
        }
    }

    /// `object` of `kind` in the envelope kubectl sends.
    fn envelope(kind: &str, object: &DynamicMessage) -> Vec<u8> {
        let unknown = build(
            "k8s.io.apimachinery.pkg.runtime.Unknown",
            &json!({ "typeMeta": { "apiVersion": "v1", "kind": kind } }),
        );
        let mut unknown = unknown;
        unknown.set_field_by_name("raw", Proto::Bytes(object.encode_to_vec().into()));
        [MAGIC.as_slice(), &unknown.encode_to_vec()].concat()
    }

    fn config_maps() -> ResourceDef {
        ResourceDef::config_maps()
    }

    #[test]
    fn a_configmap_reads_as_kubernetes_writes_it_in_json() {
        let map = build(
            &format!("{CORE_V1}.ConfigMap"),
            &json!({
                "metadata": { "name": "web", "namespace": "", "generateName": "", "labels": { "app": "x", "empty": "" },
                              "creationTimestamp": { "seconds": 1_700_000_000 } },
                "data": { "a": "1", "blank": "" },
                "binaryData": { "b": "\u{1}" },
                "immutable": false,
            }),
        );
        let (value, unknown) = decode(&envelope("ConfigMap", &map), &config_maps()).unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": "web", "labels": { "app": "x", "empty": "" }, "creationTimestamp": "2023-11-14T22:13:20Z" },
                "data": { "a": "1", "blank": "" },
                "binaryData": { "b": "AQ==" },
                "immutable": false,
            })
        );
        assert!(unknown.is_empty());
    }

    #[test]
    fn a_pods_special_types_read_as_their_json_forms() {
        let pod = build(
            &format!("{CORE_V1}.Pod"),
            &json!({
                "metadata": { "name": "p", "creationTimestamp": {} },
                "spec": { "containers": [{
                    "name": "web",
                    "resources": { "limits": { "cpu": { "string": "500m" } } },
                    "readinessProbe": { "handler": { "httpGet": { "port": { "type": 1, "strVal": "http" } } } },
                    "ports": [{ "containerPort": 80 }],
                    "securityContext": { "runAsUser": 0 },
                }] },
            }),
        );
        let pods = ResourceDef::pods();
        let (value, _) = decode(&envelope("Pod", &pod), &pods).unwrap();
        let container = &value["spec"]["containers"][0];
        assert_eq!(container["resources"]["limits"]["cpu"], "500m");
        assert_eq!(container["readinessProbe"]["httpGet"]["port"], "http", "the embedded handler is inline");
        assert_eq!(container["securityContext"]["runAsUser"], 0, "a pointer set to zero is kept");
        assert_eq!(value["metadata"], json!({ "name": "p" }), "the zero time is unset");
    }

    #[test]
    fn fields_the_definitions_lack_are_reported_by_number() {
        let mut map = build(&format!("{CORE_V1}.ConfigMap"), &json!({ "metadata": { "name": "web" } }));
        let mut bytes = map.encode_to_vec();
        // Field 99, varint 7: no ConfigMap field has that number.
        bytes.extend([0x98, 0x06, 0x07]);
        map = DynamicMessage::decode(map.descriptor(), bytes.as_slice()).unwrap();
        let (_, unknown) = decode(&envelope("ConfigMap", &map), &config_maps()).unwrap();
        assert_eq!(unknown, ["field 99"]);
    }

    #[test]
    fn bodies_that_are_not_the_kind_in_protobuf_are_refused() {
        let map = build(&format!("{CORE_V1}.ConfigMap"), &json!({ "metadata": { "name": "web" } }));
        let whole = envelope("ConfigMap", &map);
        let refusals = [
            (b"{\"kind\":\"ConfigMap\"}".to_vec(), "does not start with the k8s\\0 prefix"),
            (whole[..whole.len() - 3].to_vec(), "does not decode"),
            (envelope("Secret", &map), "the envelope holds a v1 Secret"),
            ([MAGIC.as_slice(), &[0xff, 0xff]].concat(), "the envelope does not decode"),
        ];
        for (body, reason) in refusals {
            let error = decode(&body, &config_maps()).unwrap_err();
            assert_eq!(error.code(), 400);
            assert!(error.message().contains(reason), "{} lacks {reason}", error.message());
        }
    }
}
