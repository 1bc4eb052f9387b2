//! OpenAPI v3, as kube-apiserver publishes it: `/openapi/v3` lists one document per
//! group-version (`api/v1`, `apis/{group}/{version}`), each with the served resources'
//! paths and their schemas.
//!
//! What clients read from it: kubectl (1.27 and later) sends `fieldValidation=Strict`
//! once the `PATCH` of a kind's path lists that parameter, instead of refusing to
//! validate; `kubectl explain` renders the schema whose `x-kubernetes-group-version-kind`
//! names the kind. The built-in kinds' schemas are Kubernetes' own, generated through
//! `k8s-openapi`'s `schemars` support; a custom resource's is an object that keeps
//! every field (`x-kubernetes-preserve-unknown-fields`), as for a definition without a
//! schema.

use crate::registry::{Registry, Served};
use crate::state::AppState;
use crate::status::ApiError;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{json, Map, Value};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The schema of `ObjectMeta`, which every kind's `metadata` is.
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// `/openapi/v3`: each group-version's document, at a URL whose `hash` changes when the
/// document does (clients cache by it).
pub(crate) async fn index(State(state): State<AppState>) -> Response {
    let mut paths = Map::new();
    let mut versions: Vec<(String, String)> = Vec::new();
    for served in &state.registry.all {
        let pair = (served.def.group.clone(), served.def.version.clone());
        if !versions.contains(&pair) {
            versions.push(pair);
        }
    }
    for (group, version) in versions {
        let path = document_path(&group, &version);
        let url = format!("/openapi/v3/{path}?hash={:016X}", fingerprint(&state.registry, &group, &version));
        paths.insert(path, json!({ "serverRelativeURL": url }));
    }
    json_answer(&json!({ "paths": paths }))
}

/// `/openapi/v3/api/{version}`.
pub(crate) async fn core_document(State(state): State<AppState>, Path(version): Path<String>) -> Response {
    group_version_document(&state.registry, "", &version)
}

/// `/openapi/v3/apis/{group}/{version}`.
pub(crate) async fn group_document(
    State(state): State<AppState>,
    Path((group, version)): Path<(String, String)>,
) -> Response {
    group_version_document(&state.registry, &group, &version)
}

fn document_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// What a group-version's document is made from: its resources' definitions.
fn fingerprint(registry: &Registry, group: &str, version: &str) -> u64 {
    // SipHash with fixed keys: the same resources hash the same in every process.
    #[allow(deprecated)]
    let mut hasher = std::hash::SipHasher::new();
    for served in in_group_version(registry, group, version) {
        (&served.def.plural, &served.def.kind, served.def.namespaced, served.def.builtin.is_some())
            .hash(&mut hasher);
    }
    hasher.finish()
}

fn in_group_version<'r>(
    registry: &'r Registry,
    group: &'r str,
    version: &'r str,
) -> impl Iterator<Item = &'r Arc<Served>> {
    registry.all.iter().filter(move |served| served.def.group == group && served.def.version == version)
}

fn group_version_document(registry: &Registry, group: &str, version: &str) -> Response {
    let served: Vec<&Arc<Served>> = in_group_version(registry, group, version).collect();
    if served.is_empty() {
        return ApiError::no_such_path(&format!("/openapi/v3/{}", document_path(group, version)))
            .into_response();
    }
    let mut paths = Map::new();
    let schemas =
        schemas(&served, V3_SCHEMAS, |served, schema_name| add_paths(&mut paths, served, schema_name));
    let document = json!({
        "openapi": "3.0.0",
        "info": { "title": "watchcache-server", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": { "schemas": schemas },
    });
    json_answer(&document)
}

/// Where v3's and v2's references point.
const V3_SCHEMAS: &str = "/components/schemas";
const V2_SCHEMAS: &str = "/definitions";

/// The schemas of `served` and of what they name, each served kind's with its
/// `x-kubernetes-group-version-kind`, their references under `definitions_path`;
/// `named` is given each resource and its schema's name.
fn schemas(
    served: &[&Arc<Served>],
    definitions_path: &'static str,
    mut named: impl FnMut(&Served, &str),
) -> Map<String, Value> {
    let settings =
        SchemaSettings::openapi3().with(|settings| settings.definitions_path = definitions_path.into());
    let mut generator = SchemaGenerator::new(settings);
    let names: Vec<String> = served
        .iter()
        .map(|served| {
            let schema_name = schema_of(served, &mut generator);
            named(served, &schema_name);
            schema_name
        })
        .collect();
    let mut schemas = generator.take_definitions(true);
    // ObjectMeta is a custom resource's `metadata` even where no built-in kind names it.
    if !schemas.contains_key(OBJECT_META) {
        generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>();
        schemas.extend(generator.take_definitions(true));
    }
    for (schema_name, served) in names.into_iter().zip(served) {
        let custom = || custom_schema(&served.def.kind, definitions_path);
        let schema = schemas.entry(schema_name).or_insert_with(custom);
        schema["x-kubernetes-group-version-kind"] = json!([gvk(served)]);
    }
    schemas
}

/// `/openapi/v2`: one document of every served kind's definitions (the paths are in v3),
/// in JSON, or with the `protobuf` feature in the protobuf form kubectl before 1.27 asks
/// for (gnostic's `openapi.v2.Document`, which it validates writes and explains kinds by).
pub(crate) async fn v2(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let served: Vec<&Arc<Served>> = state.registry.all.iter().collect();
    let mut custom = Vec::new();
    let mut definitions = schemas(&served, V2_SCHEMAS, |served, schema_name| {
        if served.def.builtin.is_none() {
            custom.push(schema_name.to_owned());
        }
    });
    for schema in definitions.values_mut() {
        unwrap_references(schema);
    }
    // v2 has no `x-kubernetes-preserve-unknown-fields`: a custom resource is an object of
    // any fields, as Kubernetes publishes one with that schema in v2.
    for schema_name in custom {
        if let Some(Value::Object(schema)) = definitions.get_mut(&schema_name) {
            schema.remove("properties");
        }
    }
    let document = json!({
        "swagger": "2.0",
        "info": { "title": "watchcache-server", "version": env!("CARGO_PKG_VERSION") },
        "paths": {},
        "definitions": definitions,
    });
    match v2_form(&headers) {
        Err(refused) => refused.into_response(),
        Ok(V2Form::Json) => json_answer(&document),
        #[cfg(feature = "protobuf")]
        Ok(V2Form::Protobuf) => match crate::protobuf::openapi_v2(&document) {
            // As kube-apiserver labels it: Go's media type parser (client-go's) refuses
            // the `@` of the name clients ask by.
            Ok(encoded) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/octet-stream")], encoded)
                .into_response(),
            Err(error) => ApiError::internal(format!("the openapi v2 document does not encode: {error}"))
                .into_response(),
        },
    }
}

/// A reference with siblings as v2 writes it: `{"$ref": …, "description": …}` where v3
/// (and the schemas as generated) wrap the reference in a one-element `allOf`, which v2
/// readers (kubectl's validation and `explain` before 1.27) do not follow.
fn unwrap_references(schema: &mut Value) {
    match schema {
        Value::Object(fields) => {
            if let Some(Value::Array(all_of)) = fields.get("allOf") {
                if let [Value::Object(only)] = all_of.as_slice() {
                    if let (1, Some(reference)) = (only.len(), only.get("$ref")) {
                        let reference = reference.clone();
                        fields.remove("allOf");
                        fields.insert("$ref".into(), reference);
                    }
                }
            }
            fields.values_mut().for_each(unwrap_references);
        }
        Value::Array(values) => values.iter_mut().for_each(unwrap_references),
        _ => {}
    }
}

enum V2Form {
    Json,
    #[cfg(feature = "protobuf")]
    Protobuf,
}

/// The first form of the v2 document `headers` accept (JSON without an `Accept`).
fn v2_form(headers: &HeaderMap) -> Result<V2Form, ApiError> {
    const JSON: [&str; 3] = ["application/json", "application/*", "*/*"];
    let mut accepted = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|entry| entry.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .peekable();
    if accepted.peek().is_none() {
        return Ok(V2Form::Json);
    }
    for media_type in accepted {
        if JSON.contains(&media_type.as_str()) {
            return Ok(V2Form::Json);
        }
        #[cfg(feature = "protobuf")]
        if V2_PROTOBUF.contains(&media_type.as_str()) {
            return Ok(V2Form::Protobuf);
        }
    }
    let served =
        if cfg!(feature = "protobuf") { &["application/json", V2_PROTOBUF[0]][..] } else { &JSON[..1] };
    Err(ApiError::not_acceptable(served))
}

/// The protobuf form's media types: as kubectl 1.20 and as later clients name it.
const V2_PROTOBUF: [&str; 2] = [
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
];

/// The name of `served`'s schema in the document, its schema generated if built in.
fn schema_of(served: &Served, generator: &mut SchemaGenerator) -> String {
    let def = &served.def;
    let Some(builtin) = def.builtin else {
        let group: Vec<&str> = def.group.rsplit('.').collect();
        return format!("{}.{}.{}", group.join("."), def.version, def.kind);
    };
    builtin.generate_schema(generator)
}

/// A schemaless custom resource: any object, its `metadata` an `ObjectMeta`.
fn custom_schema(kind: &str, definitions_path: &str) -> Value {
    json!({
        "description": format!("{kind}: a custom resource, served without a schema; every field is kept."),
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": {
            "apiVersion": { "type": "string" },
            "kind": { "type": "string" },
            "metadata": { "$ref": format!("#{definitions_path}/{OBJECT_META}") },
        },
    })
}

fn gvk(served: &Served) -> Value {
    json!({ "group": served.def.group, "version": served.def.version, "kind": served.def.kind })
}

/// The collection's and the object's paths of `served`, each operation naming its kind.
fn add_paths(paths: &mut Map<String, Value>, served: &Served, schema_name: &str) {
    let def = &served.def;
    let root = format!("/{}", document_path(&def.group, &def.version));
    let collection = if def.namespaced {
        format!("{root}/namespaces/{{namespace}}/{}", def.plural)
    } else {
        format!("{root}/{}", def.plural)
    };
    let reference = json!({ "$ref": format!("#{V3_SCHEMAS}/{schema_name}") });
    let body = |types: &[&str]| {
        let content: Map<String, Value> = types
            .iter()
            .map(|media_type| ((*media_type).to_owned(), json!({ "schema": reference })))
            .collect();
        json!({ "required": true, "content": content })
    };
    let answer =
        json!({ "200": { "description": "OK", "content": { "application/json": { "schema": reference } } } });
    let query = |name: &str, description: &str| json!({ "name": name, "in": "query", "description": description, "schema": { "type": "string" } });
    let writing = || {
        vec![
            query("dryRun", "All: check and answer, store nothing."),
            query("fieldValidation", "Ignore, Warn or Strict: what an unknown field in the body does."),
        ]
    };
    let operation = |action: &str, parameters: Vec<Value>| {
        json!({
            "operationId": format!("{action}{}", def.kind),
            "parameters": parameters,
            "responses": answer,
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk(served),
        })
    };
    let mut path_parameters = Vec::new();
    if def.namespaced {
        path_parameters.push(
            json!({ "name": "namespace", "in": "path", "required": true, "schema": { "type": "string" } }),
        );
    }
    let mut post = operation("post", writing());
    post["requestBody"] = body(&["application/json", "application/yaml"]);
    let list = operation(
        "list",
        vec![
            query("labelSelector", "The objects whose labels match."),
            query("fieldSelector", "The objects whose fields match."),
            query("resourceVersion", "The revision to read at."),
            query("watch", "Watch for changes instead of listing."),
        ],
    );
    paths.insert(collection.clone(), json!({ "parameters": path_parameters, "get": list, "post": post }));
    let mut item_parameters = path_parameters;
    item_parameters
        .push(json!({ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }));
    let mut put = operation("put", writing());
    put["requestBody"] = body(&["application/json", "application/yaml"]);
    let mut patch = operation("patch", writing());
    let mut patch_types = vec!["application/json-patch+json", "application/merge-patch+json"];
    if def.builtin.is_some() {
        patch_types.push("application/strategic-merge-patch+json");
    }
    patch["requestBody"] = body(&patch_types);
    paths.insert(
        format!("{collection}/{{name}}"),
        json!({
            "parameters": item_parameters,
            "get": operation("get", Vec::new()),
            "put": put,
            "patch": patch,
            "delete": operation("delete", vec![query("dryRun", "All: check and answer, delete nothing.")]),
        }),
    );
}

fn json_answer(document: &Value) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], document.to_string()).into_response()
}
