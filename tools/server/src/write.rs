//! Writes: create, replace, patch and delete of one object, each through the resource's
//! storage (see `storage/`), answered with the object as written (a delete: a `Status`
//! `Success`, or for pods the last state at the deleting revision, as Kubernetes answers).

use crate::negotiation::{Answer, PROTOBUF, PROTOBUF_SERVED};
use crate::object::{parse_resource_version, Identity, Object, Submitted};
use crate::query::{dry_run, Query};
use crate::registry::Served;
use crate::state::State;
use crate::status::ApiError;
use crate::storage::{Preconditions, Target};
use crate::BuiltIn;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;

/// The media types of an object body.
const JSON: &str = "application/json";
const YAML: &str = "application/yaml";

/// The patch content types.
const JSON_PATCH: &str = "application/json-patch+json";
const MERGE_PATCH: &str = "application/merge-patch+json";
const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";
const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// How a patch body changes an object.
enum PatchKind {
    /// RFC 6902: a list of operations, applied in order, all or none.
    Json(json_patch::Patch),
    /// RFC 7386.
    Merge(serde_json::Value),
    /// A merge that merges the lists the kind declares mergeable, with directives (see
    /// `strategic.rs`); Kubernetes takes one only for its built-in kinds.
    Strategic(BuiltIn, serde_json::Value),
}

impl PatchKind {
    fn parse(served: &Served, content_type: &str, body: &[u8]) -> Result<Self, ApiError> {
        let strategic = is_media_type(content_type, STRATEGIC_MERGE_PATCH);
        if is_media_type(content_type, JSON_PATCH) {
            let operations = serde_json::from_slice(body).map_err(|error| {
                ApiError::bad_request(format!("json patch is not a list of operations: {error}"))
            })?;
            return Ok(Self::Json(operations));
        }
        let merge = || {
            serde_json::from_slice(body)
                .map_err(|error| ApiError::bad_request(format!("patch is not valid json: {error}")))
        };
        if is_media_type(content_type, MERGE_PATCH) {
            return Ok(Self::Merge(merge()?));
        }
        if let (true, Some(kind)) = (strategic, served.def.builtin) {
            return Ok(Self::Strategic(kind, merge()?));
        }
        if is_media_type(content_type, APPLY_PATCH) {
            return Err(ApiError::unsupported_media_type_because(
                content_type,
                "server-side apply is not served; use client-side apply (kubectl apply --server-side=false)",
            ));
        }
        if strategic {
            return Err(ApiError::unsupported_media_type_because(
                content_type,
                "strategic merge patch is not supported for custom resources; use a merge or json patch",
            ));
        }
        Err(ApiError::unsupported_media_type(content_type, &[JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH]))
    }

    /// A `resourceVersion` the patch sets: a precondition, as in Kubernetes.
    fn precondition(&self) -> Result<Option<u64>, ApiError> {
        let (Self::Merge(patch) | Self::Strategic(_, patch)) = self else { return Ok(None) };
        patch["metadata"]["resourceVersion"].as_str().map(parse_resource_version).transpose()
    }

    /// `value` patched; a JSON patch that does not apply is 422, as kube-apiserver has it.
    fn apply(&self, value: &mut serde_json::Value) -> Result<(), ApiError> {
        match self {
            Self::Json(operations) => json_patch::patch(value, operations)
                .map_err(|error| ApiError::unprocessable(format!("json patch does not apply: {error}"))),
            Self::Merge(patch) => {
                json_patch::merge(value, patch);
                Ok(())
            }
            Self::Strategic(kind, patch) => crate::strategic::apply(*kind, value, patch).map_err(|error| {
                ApiError::bad_request(format!("strategic merge patch does not apply: {error}"))
            }),
        }
    }
}

fn content_type(headers: &HeaderMap) -> &str {
    headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("")
}

/// Whether `given` (a `Content-Type`, perhaps with parameters) is `expected`.
fn is_media_type(given: &str, expected: &str) -> bool {
    given.split(';').next().is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case(expected))
}

/// Reads a request body up to the limit.
async fn read_body(state: &State, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let limit = state.settings.max_body_bytes;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::too_large(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let over_limit = std::error::Error::source(&error)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if over_limit {
            ApiError::too_large(limit)
        } else {
            ApiError::bad_request(format!("could not read the request body: {error}"))
        }
    })
}

/// An object body: JSON or YAML, as its `Content-Type` says (none means JSON, as
/// kube-apiserver reads it). Anything else is 415, so a web page cannot send one as a
/// "simple" `text/plain` request that needs no CORS preflight.
async fn object_body(
    state: &State,
    served: &Served,
    headers: &HeaderMap,
    body: Body,
) -> Result<Submitted, ApiError> {
    let given = content_type(headers);
    let yaml = is_media_type(given, YAML);
    let protobuf = is_media_type(given, PROTOBUF);
    if protobuf && served.def.builtin.is_none() {
        return Err(ApiError::unsupported_media_type_because(
            given,
            "protobuf is served for the built-in kinds only; a custom resource is json or yaml",
        ));
    }
    if protobuf && !PROTOBUF_SERVED {
        return Err(protobuf_not_built(given));
    }
    if !given.is_empty() && !yaml && !protobuf && !is_media_type(given, JSON) {
        let protobuf = (PROTOBUF_SERVED && served.def.builtin.is_some()).then_some(PROTOBUF);
        let accepted: Vec<&str> = [JSON, YAML].into_iter().chain(protobuf).collect();
        return Err(ApiError::unsupported_media_type(given, &accepted));
    }
    let body = read_body(state, headers, body).await?;
    #[cfg(feature = "protobuf")]
    if protobuf {
        let (value, unknown_fields) = crate::protobuf::decode(&body, &served.def)?;
        let mut submitted = Submitted::from_value(value, &served.def)?;
        submitted.unknown_fields.extend(unknown_fields);
        return Ok(submitted);
    }
    if !yaml {
        return Submitted::parse(&body, &served.def);
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("request body is not valid yaml: not utf-8"))?;
    // The parser's default budget bounds what aliases can expand to.
    let value = serde_saphyr::from_str(text)
        .map_err(|error| ApiError::bad_request(format!("request body is not valid yaml: {error}")))?;
    Submitted::from_value(value, &served.def)
}

/// What the query of a write asks of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteOptions {
    /// `dryRun=All`: checked and answered as if written, nothing stored. A dry-run create
    /// answers at the revision it was checked at; Kubernetes leaves its `resourceVersion`
    /// empty.
    pub(crate) dry_run: bool,
    pub(crate) field_validation: FieldValidation,
}

impl WriteOptions {
    pub(crate) fn parse(query: &Query) -> Result<Self, ApiError> {
        let choices = [
            ("Ignore", FieldValidation::Ignore),
            ("Warn", FieldValidation::Warn),
            ("Strict", FieldValidation::Strict),
        ];
        let field_validation = query.choice("fieldValidation", &choices, FieldValidation::Warn)?;
        Ok(Self { dry_run: query.dry_run()?, field_validation })
    }
}

/// `fieldValidation`: what a field of the body that a built-in kind does not have does
/// to a write (it is kept unless refused; a custom resource keeps every field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    Ignore,
    /// The default, as in Kubernetes: the write happens with a `Warning` header per field.
    Warn,
    /// 400, naming every such field.
    Strict,
}

/// The most `Warning` headers one answer carries.
const MAX_WARNINGS: usize = 32;

impl FieldValidation {
    /// The warnings `unknown` fields earn, or the refusal.
    fn check(self, unknown: &[String]) -> Result<Vec<String>, ApiError> {
        let named = || unknown.iter().map(|field| format!("unknown field {field:?}"));
        match self {
            Self::Strict if !unknown.is_empty() => Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                named().take(MAX_WARNINGS).collect::<Vec<_>>().join(", ")
            ))),
            Self::Warn => Ok(named().take(MAX_WARNINGS).collect()),
            Self::Ignore | Self::Strict => Ok(Vec::new()),
        }
    }
}

/// `response` with a `Warning` header (RFC 7234's `299 -` form, as Kubernetes sends
/// them) per warning that fits in one.
fn warned(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let quoted = format!("299 - \"{}\"", warning.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(value) = HeaderValue::from_str(&quoted) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

pub(crate) async fn create(
    state: &State,
    served: &Served,
    namespace: Option<&str>,
    options: WriteOptions,
    (headers, body): (HeaderMap, Body),
) -> Result<Response, ApiError> {
    let namespace = match (namespace, served.def.namespaced) {
        (Some(namespace), true) => namespace,
        (None, false) => "",
        (None, true) => return Err(ApiError::method_not_allowed("a collection of every namespace")),
        (Some(namespace), false) => return Err(ApiError::no_such_path(&format!("namespaces/{namespace}"))),
    };
    let answer = served.answer(&headers)?;
    let submitted = object_body(state, served, &headers, body).await?;
    let warnings = options.field_validation.check(&submitted.unknown_fields)?;
    let identity = Identity::new();
    let name = submitted.name(&served.def, &identity.uid)?;
    let object = submitted.into_object(&served.def, namespace, name.clone(), identity)?;
    served.metrics.encodes.inc();
    if served.def.namespaced {
        crate::namespaces::ensure_exists(&state.registry, namespace).await?;
    }
    let target = Target { resource: &served.group_resource, namespace, name: &name };
    let stored = served.delegator.create(target, object, options.dry_run).await?;
    Ok(warned(
        served.object_response(answer, StatusCode::CREATED, &stored.object, stored.revision)?,
        &warnings,
    ))
}

pub(crate) async fn replace(
    state: &State,
    served: &Served,
    (namespace, name): (&str, &str),
    options: WriteOptions,
    (headers, body): (HeaderMap, Body),
) -> Result<Response, ApiError> {
    let answer = served.answer(&headers)?;
    let submitted = object_body(state, served, &headers, body).await?;
    let warnings = options.field_validation.check(&submitted.unknown_fields)?;
    let precondition = submitted.resource_version;
    let response = update(served, (namespace, name), (precondition, options, answer), &|current: &Object| {
        replacement(served, (namespace, name), submitted.clone(), current)
    })
    .await?;
    Ok(warned(response, &warnings))
}

pub(crate) async fn patch(
    state: &State,
    served: &Served,
    (namespace, name): (&str, &str),
    options: WriteOptions,
    (headers, body): (HeaderMap, Body),
) -> Result<Response, ApiError> {
    let answer = served.answer(&headers)?;
    let given = content_type(&headers);
    let body = read_body(state, &headers, body).await?;
    let patch = PatchKind::parse(served, given, &body)?;
    let precondition = patch.precondition()?;
    // The warnings of the attempt that was written (a retried one computes them again).
    let warnings = std::sync::Mutex::new(Vec::new());
    let response = update(served, (namespace, name), (precondition, options, answer), &|current: &Object| {
        let mut value = current.to_value(&served.head);
        patch.apply(&mut value)?;
        let submitted = Submitted::from_value(value, &served.def)?;
        let checked = options.field_validation.check(&submitted.unknown_fields)?;
        *warnings.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = checked;
        replacement(served, (namespace, name), submitted, current)
    })
    .await?;
    let warnings = warnings.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(warned(response, &warnings))
}

/// The object `submitted` makes of `current`: same identity, same name.
fn replacement(
    served: &Served,
    (namespace, name): (&str, &str),
    submitted: Submitted,
    current: &Object,
) -> Result<Object, ApiError> {
    if submitted.declared_name() != Some(name) {
        return Err(ApiError::bad_request(format!(
            "metadata.name does not match the name in the path {name:?}"
        )));
    }
    let object = submitted.into_object(&served.def, namespace, name.to_owned(), current.identity())?;
    served.metrics.encodes.inc();
    Ok(object)
}

async fn update(
    served: &Served,
    (namespace, name): (&str, &str),
    (precondition, options, answer): (Option<u64>, WriteOptions, Answer),
    next: &(dyn Fn(&Object) -> Result<Object, ApiError> + Send + Sync),
) -> Result<Response, ApiError> {
    let target = Target { resource: &served.group_resource, namespace, name };
    let stored = served.delegator.update(target, precondition, next, options.dry_run).await?;
    served.object_response(answer, StatusCode::OK, &stored.object, stored.revision)
}

/// A delete's body: JSON, or with the `protobuf` feature Kubernetes' protobuf.
fn delete_options(headers: &HeaderMap, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let invalid = |error: serde_json::Error| ApiError::bad_request(format!("invalid DeleteOptions: {error}"));
    let given = content_type(headers);
    if is_media_type(given, PROTOBUF) {
        #[cfg(feature = "protobuf")]
        return serde_json::from_value(crate::protobuf::decode_delete_options(body)?).map_err(invalid);
        #[cfg(not(feature = "protobuf"))]
        return Err(protobuf_not_built(given));
    }
    serde_json::from_slice(body).map_err(invalid)
}

/// 415 to a protobuf body, in a build without the `protobuf` feature.
fn protobuf_not_built(given: &str) -> ApiError {
    ApiError::unsupported_media_type_because(
        given,
        "this server is built without protobuf; send json or yaml",
    )
}

/// `DeleteOptions`, of which the server reads the preconditions and `dryRun`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteOptions {
    preconditions: Option<DeletePreconditions>,
    #[serde(default)]
    dry_run: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeletePreconditions {
    resource_version: Option<String>,
    uid: Option<String>,
}

pub(crate) async fn delete(
    state: &State,
    served: &Served,
    (namespace, name): (&str, &str),
    options: WriteOptions,
    (headers, body): (HeaderMap, Body),
) -> Result<Response, ApiError> {
    let answer = served.answer(&headers)?;
    let body = read_body(state, &headers, body).await?;
    let body_options =
        if body.is_empty() { DeleteOptions::default() } else { delete_options(&headers, &body)? };
    // kubectl sends `dryRun` in the body; other clients in the query.
    let dry_run = options.dry_run || dry_run(body_options.dry_run.iter().map(String::as_str))?;
    let given = body_options.preconditions.unwrap_or_default();
    let revision = given.resource_version.as_deref().map(parse_resource_version).transpose()?;
    let preconditions = Preconditions { revision, uid: given.uid };
    let is_namespace = served.def.builtin == Some(BuiltIn::Namespace);
    if is_namespace {
        crate::namespaces::may_delete(served, name)?;
    }
    let target = Target { resource: &served.group_resource, namespace, name };
    let stored = served.delegator.delete(target, &preconditions, dry_run).await?;
    if is_namespace && !dry_run {
        crate::namespaces::delete_contents(&state.registry, name).await?;
    }
    if !served.def.delete_answers_the_object() {
        return Ok(crate::status::deleted(&served.group_resource, name, stored.object.uid()));
    }
    served.object_response(answer, StatusCode::OK, &stored.object, stored.revision)
}
