//! The OpenAPI v2 document in its protobuf form, gnostic's `openapi.v2.Document` (which
//! kubectl before 1.27 reads, through client-go, to validate writes and explain kinds).
//!
//! gnostic's messages mirror the JSON document by rules, read here from the definitions
//! rather than written per message: a field `snake_case` is the JSON property
//! `snakeCase` (`_ref` is `$ref`); a message whose one field is a repeated
//! `additional_properties` is a JSON object of named values (`Named…` pairs); the
//! properties that start with `x-` are `vendor_extension`s; an `Any` holds its JSON as
//! `yaml` (JSON is YAML); `TypeItem` and `ItemsItem` take one value or a list, and
//! `AdditionalPropertiesItem` a schema or a boolean.

use super::message;
use prost::Message;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value as Proto};
use serde_json::{Map, Value};

/// `document` (an OpenAPI v2 document's JSON) as an `openapi.v2.Document`; `Err` names
/// the first value its message does not take.
pub(crate) fn openapi_v2(document: &Value) -> Result<Vec<u8>, String> {
    Ok(gnostic(document, &message("openapi.v2.Document"), "")?.encode_to_vec())
}

fn gnostic(json: &Value, descriptor: &MessageDescriptor, path: &str) -> Result<DynamicMessage, String> {
    let mismatch = || format!("{path} is {json}, which does not fit {}", descriptor.full_name());
    let mut message = DynamicMessage::new(descriptor.clone());
    let field = |name: &str| descriptor.get_field_by_name(name).ok_or_else(mismatch);
    let one_or_many = |json: &Value| match json {
        Value::Array(values) => values.clone(),
        one => vec![one.clone()],
    };
    match descriptor.name() {
        "Any" => {
            message.set_field(&field("yaml")?, Proto::String(json.to_string()));
            return Ok(message);
        }
        "TypeItem" | "ItemsItem" => {
            let (name, values) =
                (if descriptor.name() == "TypeItem" { "value" } else { "schema" }, one_or_many(json));
            let list = field(name)?;
            let values = values.iter().map(|value| single(value, &list, path)).collect::<Result<_, _>>()?;
            message.set_field(&list, Proto::List(values));
            return Ok(message);
        }
        "AdditionalPropertiesItem" => {
            match json {
                Value::Bool(flag) => message.set_field(&field("boolean")?, Proto::Bool(*flag)),
                schema => {
                    let schema_field = field("schema")?;
                    message.set_field(&schema_field, single(schema, &schema_field, path)?);
                }
            }
            return Ok(message);
        }
        _ => {}
    }
    let Value::Object(properties) = json else { return Err(mismatch()) };
    let fields: Vec<FieldDescriptor> = descriptor.fields().collect();
    if let [pairs] = fields.as_slice() {
        if pairs.name() == "additional_properties" && pairs.is_list() {
            message.set_field(pairs, named(properties, pairs, path, |_| true)?);
            return Ok(message);
        }
    }
    for field in fields {
        if field.name() == "vendor_extension" {
            let extensions = named(properties, &field, path, |name| name.starts_with("x-"))?;
            message.set_field(&field, extensions);
            continue;
        }
        let Some(value) = properties.get(&json_name(field.name())).filter(|value| !value.is_null()) else {
            continue;
        };
        let child = format!("{path}.{}", field.name());
        let value = if field.is_list() {
            let Value::Array(values) = value else { return Err(format!("{child} is not a json array")) };
            Proto::List(values.iter().map(|value| single(value, &field, &child)).collect::<Result<_, _>>()?)
        } else {
            single(value, &field, &child)?
        };
        message.set_field(&field, value);
    }
    Ok(message)
}

/// `properties` whose names `wanted` takes, as `Named…` pairs of `field`'s message.
fn named(
    properties: &Map<String, Value>,
    field: &FieldDescriptor,
    path: &str,
    wanted: impl Fn(&str) -> bool,
) -> Result<Proto, String> {
    let Kind::Message(pair) = field.kind() else {
        return Err(format!("{path}: {} is not a message", field.name()));
    };
    let (Some(name), Some(value)) = (pair.get_field_by_name("name"), pair.get_field_by_name("value")) else {
        return Err(format!("{path}: {} is not a named pair", pair.full_name()));
    };
    let mut pairs = Vec::new();
    for (key, json) in properties.iter().filter(|(key, _)| wanted(key)) {
        let mut entry = DynamicMessage::new(pair.clone());
        entry.set_field(&name, Proto::String(key.clone()));
        entry.set_field(&value, single(json, &value, &format!("{path}.{key}"))?);
        pairs.push(Proto::Message(entry));
    }
    Ok(Proto::List(pairs))
}

/// One value of `field` (a list's element, for a repeated one).
fn single(json: &Value, field: &FieldDescriptor, path: &str) -> Result<Proto, String> {
    let mismatch = || format!("{path} is {json}, which does not fit {:?}", field.kind());
    Ok(match field.kind() {
        Kind::String => Proto::String(json.as_str().ok_or_else(mismatch)?.to_owned()),
        Kind::Bool => Proto::Bool(json.as_bool().ok_or_else(mismatch)?),
        Kind::Double => Proto::F64(json.as_f64().ok_or_else(mismatch)?),
        Kind::Int64 => Proto::I64(json.as_i64().ok_or_else(mismatch)?),
        Kind::Message(descriptor) => Proto::Message(gnostic(json, &descriptor, path)?),
        _ => return Err(mismatch()),
    })
}

/// The JSON property of a gnostic field.
fn json_name(field: &str) -> String {
    if field == "_ref" {
        return "$ref".into();
    }
    let mut name = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                name.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => name.push(c),
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::ReflectMessage;
    use serde_json::json;

    #[test]
    fn a_document_maps_to_gnostics_messages_by_their_rules() {
        let document = json!({
            "swagger": "2.0",
            "info": { "title": "t", "version": "1" },
            "paths": {},
            "definitions": {
                "io.k8s.api.core.v1.ConfigMap": {
                    "type": "object",
                    "description": "d",
                    "required": ["metadata"],
                    "properties": {
                        "data": { "type": "object", "additionalProperties": { "type": "string" } },
                        "metadata": { "$ref": "#/definitions/meta" },
                        "items": { "type": "array", "items": { "type": "string" } },
                        "open": { "additionalProperties": true, "x-kubernetes-preserve-unknown-fields": true },
                        "limit": { "type": "integer", "maxLength": 3, "minimum": 1.5 },
                    },
                    "x-kubernetes-group-version-kind": [{ "group": "", "kind": "ConfigMap", "version": "v1" }],
                },
            },
        });
        let bytes = openapi_v2(&document).unwrap();
        let decoded = DynamicMessage::decode(message("openapi.v2.Document"), bytes.as_slice()).unwrap();
        // Read back through prost-reflect's own JSON mapping of the messages (proto
        // field names), which shows every rule at once.
        let options = prost_reflect::SerializeOptions::new().use_proto_field_name(true);
        let mut read = serde_json::Serializer::new(Vec::new());
        decoded.serialize_with_options(&mut read, &options).unwrap();
        let read: Value = serde_json::from_slice(&read.into_inner()).unwrap();
        assert_eq!(read["swagger"], "2.0");
        let definition = &read["definitions"]["additional_properties"][0];
        assert_eq!(definition["name"], "io.k8s.api.core.v1.ConfigMap");
        let schema = &definition["value"];
        assert_eq!(schema["type"]["value"], json!(["object"]));
        assert_eq!(schema["required"], json!(["metadata"]));
        assert_eq!(
            schema["vendor_extension"],
            json!([{ "name": "x-kubernetes-group-version-kind",
                     "value": { "yaml": r#"[{"group":"","kind":"ConfigMap","version":"v1"}]"# } }])
        );
        let properties: Map<String, Value> = schema["properties"]["additional_properties"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| (pair["name"].as_str().unwrap().to_owned(), pair["value"].clone()))
            .collect();
        assert_eq!(properties["data"]["additional_properties"]["schema"]["type"]["value"], json!(["string"]));
        assert_eq!(properties["metadata"]["_ref"], "#/definitions/meta");
        assert_eq!(properties["items"]["items"]["schema"][0]["type"]["value"], json!(["string"]));
        assert_eq!(properties["open"]["additional_properties"]["boolean"], true);
        assert_eq!(
            (properties["limit"]["max_length"].as_str(), properties["limit"]["minimum"].as_f64()),
            (Some("3"), Some(1.5))
        );
        assert_eq!(decoded.descriptor().full_name(), "openapi.v2.Document");
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named() {
        let error = openapi_v2(&json!({ "swagger": 2 })).unwrap_err();
        assert!(error.contains(".swagger is 2"), "{error}");
    }
}
