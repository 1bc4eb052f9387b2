//! The resource endpoints: routes, query parameters, and list, get, create, replace and
//! delete. Watches are in `watch.rs`.

use crate::discovery;
use crate::metrics::Metrics;
use crate::object::{parse_resource_version, validate_name, Identity, Object, Submitted};
use crate::resource::{Registry, Served};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::watch;
use crate::Settings;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State as Extract};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::Semaphore;
use watchcache::{At, ConditionalError, ListOptions, Readiness};

/// Everything a request needs.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) registry: Registry,
    pub(crate) metrics: Metrics,
    pub(crate) settings: Settings,
    /// One permit per open watch.
    pub(crate) watch_slots: Arc<Semaphore>,
    /// Flips to `true` when the server begins to shut down: open watches end.
    pub(crate) shutting_down: tokio::sync::watch::Receiver<bool>,
}

pub(crate) type AppState = Arc<State>;

/// The router over `state`.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/api", get(discovery::core_versions))
        .route("/api/{version}", get(discovery::core_resources))
        .route("/apis", get(discovery::groups))
        .route("/apis/{group}/{version}", get(discovery::group_resources))
        .route("/version", get(discovery::version))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/{version}/{plural}", get(core_all_namespaces))
        .route("/api/{version}/namespaces/{namespace}/{plural}", get(core_collection).post(core_create))
        .route(
            "/api/{version}/namespaces/{namespace}/{plural}/{name}",
            get(core_get).put(core_replace).patch(core_patch).delete(core_delete),
        )
        .route("/apis/{group}/{version}/{plural}", get(group_all_namespaces))
        .route(
            "/apis/{group}/{version}/namespaces/{namespace}/{plural}",
            get(group_collection).post(group_create),
        )
        .route(
            "/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}",
            get(group_get).put(group_replace).patch(group_patch).delete(group_delete),
        )
        .fallback(|request: Request| async move { ApiError::no_such_path(request.uri().path()) })
        .method_not_allowed_fallback(|request: Request| async move {
            ApiError::method_not_allowed(request.uri().path())
        })
        .with_state(state)
}

async fn ready(Extract(state): Extract<AppState>) -> Response {
    let pending = state.registry.all.iter().find(|served| served.cacher.readiness() != Readiness::Ready);
    match pending {
        None => "ok".into_response(),
        Some(served) => ApiError::unavailable(format!("{} is not ready", served.def.plural)).into_response(),
    }
}

async fn metrics(Extract(state): Extract<AppState>) -> Response {
    let text = state.metrics.encode();
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
        .into_response()
}

/// The query parameters of list and watch, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CollectionQuery {
    label_selector: Option<String>,
    field_selector: Option<String>,
    pub(crate) resource_version: Option<String>,
    resource_version_match: Option<String>,
    limit: Option<String>,
    #[serde(rename = "continue")]
    continue_token: Option<String>,
    watch: Option<String>,
    pub(crate) allow_watch_bookmarks: Option<String>,
    pub(crate) send_initial_events: Option<String>,
    pub(crate) timeout_seconds: Option<String>,
}

impl CollectionQuery {
    /// `resourceVersion` as a revision; `None` when absent, empty or `"0"` ("any").
    pub(crate) fn revision(&self) -> Result<Option<u64>, ApiError> {
        match self.resource_version.as_deref() {
            None | Some("") | Some("0") => Ok(None),
            Some(text) => parse_resource_version(text).map(Some),
        }
    }

    /// `resourceVersionMatch`: `None`, or exactness (`Exact` true, `NotOlderThan` false).
    pub(crate) fn exact_match(&self) -> Result<Option<bool>, ApiError> {
        match self.resource_version_match.as_deref() {
            None | Some("") => Ok(None),
            Some("Exact") => Ok(Some(true)),
            Some("NotOlderThan") => Ok(Some(false)),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid resourceVersionMatch {other:?}: must be Exact or NotOlderThan"
            ))),
        }
    }
}

/// Parses a boolean query parameter as Kubernetes does (`true`, `1`; `false`, `0`).
pub(crate) fn flag(name: &str, value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!("invalid {name} {other:?}: must be true or false"))),
    }
}

/// The selectors the index does not serve, as one test.
pub(crate) type Predicate = Arc<dyn Fn(&Object) -> bool + Send + Sync>;

/// The filter of a list or watch: the namespace's key prefix, the trigger value of a
/// `spec.nodeName=` term, and a predicate for the rest of the selectors.
pub(crate) struct Selection {
    pub(crate) prefix: String,
    pub(crate) node_name: Option<String>,
    pub(crate) predicate: Option<Predicate>,
}

impl Selection {
    pub(crate) fn parse(
        served: &Served,
        namespace: Option<&str>,
        query: &CollectionQuery,
    ) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(query.label_selector.as_deref().unwrap_or(""))?;
        let mut fields =
            FieldSelector::parse(query.field_selector.as_deref().unwrap_or(""), served.def.node_name)?;
        let node_name = fields.take_node_name();
        let predicate: Option<Predicate> = if labels.is_empty() && fields.is_empty() {
            None
        } else {
            Some(Arc::new(move |object: &Object| labels.matches(object.labels()) && fields.matches(object)))
        };
        Ok(Self { prefix: served.prefix(namespace), node_name, predicate })
    }
}

/// Where a paginated list continues: the revision of its first page and the last key
/// sent. Opaque to clients (base64 of JSON).
#[derive(Debug, Serialize, Deserialize)]
struct ContinueToken {
    #[serde(rename = "rv")]
    revision: u64,
    #[serde(rename = "start")]
    after: String,
}

impl ContinueToken {
    fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    fn decode(text: &str, prefix: &str) -> Result<Self, ApiError> {
        let invalid = || ApiError::bad_request(format!("invalid continue token {text:?}"));
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let token: Self = serde_json::from_slice(&json).map_err(|_| invalid())?;
        // A token from another collection would list keys outside this one's prefix.
        if !token.after.starts_with(prefix) {
            return Err(invalid());
        }
        Ok(token)
    }
}

/// A collection path: `namespace` `None` for every namespace.
struct Collection {
    group: String,
    version: String,
    plural: String,
    namespace: Option<String>,
}

impl Collection {
    fn served<'s>(&self, state: &'s State) -> Result<&'s Arc<Served>, ApiError> {
        if let Some(namespace) = &self.namespace {
            validate_name("namespace", namespace)?;
        }
        state.registry.find(&self.group, &self.version, &self.plural)
    }
}

async fn collection(
    state: AppState,
    collection: Collection,
    query: CollectionQuery,
) -> Result<Response, ApiError> {
    let served = collection.served(&state)?.clone();
    if flag("watch", query.watch.as_deref())? {
        return watch::respond(state, served, collection.namespace.as_deref(), &query);
    }
    list(served, collection.namespace.as_deref(), &query).await
}

async fn list(
    served: Arc<Served>,
    namespace: Option<&str>,
    query: &CollectionQuery,
) -> Result<Response, ApiError> {
    let selection = Selection::parse(&served, namespace, query)?;
    let mut options = ListOptions::new().prefix(selection.prefix.clone());
    if let Some(node_name) = selection.node_name {
        options = options.trigger(node_name);
    }
    if let Some(predicate) = selection.predicate {
        options = options.predicate(move |object| predicate(object));
    }
    let limit = match query.limit.as_deref() {
        None | Some("") | Some("0") => None,
        Some(text) => Some(
            text.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {text:?}: not a count")))?,
        ),
    };
    let continued = query.continue_token.as_deref().filter(|token| !token.is_empty());
    let at = match (continued, query.revision()?, query.exact_match()?) {
        (Some(token), ..) => {
            let token = ContinueToken::decode(token, &selection.prefix)?;
            options = options.after(token.after);
            At::Exact(token.revision)
        }
        (None, None, Some(true)) => {
            return Err(ApiError::bad_request("resourceVersionMatch=Exact needs a resourceVersion"));
        }
        (None, None, _) => At::Latest,
        (None, Some(revision), Some(true)) => At::Exact(revision),
        (None, Some(revision), _) => At::AtLeast(revision),
    };
    if let Some(limit) = limit {
        // One more than asked for: whether it exists says whether to continue.
        options = options.limit(limit.saturating_add(1));
    }
    let cacher = served.cacher.clone();
    // A list at a revision not reached yet waits for it; off the async workers.
    let listed = tokio::task::spawn_blocking(move || cacher.list(options.at(at)))
        .await
        .map_err(|_| ApiError::unavailable("the list was interrupted"))?;
    let watchcache::List { items: mut objects, revision, .. } =
        listed.map_err(|error| match (error, continued) {
            (watchcache::ListError::Expired { requested, oldest }, Some(_)) => {
                ApiError::continue_expired(requested, oldest)
            }
            (error, _) => ApiError::from(error),
        })?;
    let next = match limit {
        Some(limit) if objects.len() > limit => {
            objects.truncate(limit);
            objects.last().map(|(key, _)| ContinueToken { revision, after: key.to_string() }.encode())
        }
        _ => None,
    };
    let mut out = BytesMut::with_capacity(128 + objects.len() * 256);
    out.put_slice(
        format!(
            r#"{{"kind":"{}List","apiVersion":"{}","metadata":{{"resourceVersion":"{revision}""#,
            served.def.kind, served.api_version
        )
        .as_bytes(),
    );
    if let Some(next) = next {
        out.put_slice(format!(r#","continue":"{next}""#).as_bytes());
    }
    out.put_slice(br#"},"items":["#);
    for (at, (_, object)) in objects.iter().enumerate() {
        if at > 0 {
            out.put_u8(b',');
        }
        object.write_json(&mut out, &served.head, object.revision());
    }
    out.put_slice(b"]}");
    Ok(json_response(StatusCode::OK, out.freeze()))
}

fn json_response(code: StatusCode, body: Bytes) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `object` as a response body, at `revision`.
fn object_response(served: &Served, code: StatusCode, object: &Object, revision: u64) -> Response {
    let mut out = BytesMut::with_capacity(512);
    object.write_json(&mut out, &served.head, revision);
    json_response(code, out.freeze())
}

/// One object's path.
struct Item {
    collection: Collection,
    name: String,
}

impl Item {
    fn resolve<'s>(&self, state: &'s State) -> Result<(&'s Arc<Served>, String), ApiError> {
        let served = self.collection.served(state)?;
        validate_name("name", &self.name)?;
        let namespace = self.collection.namespace.as_deref().unwrap_or_default();
        Ok((served, served.key(namespace, &self.name)))
    }
}

async fn get_item(state: AppState, item: Item) -> Result<Response, ApiError> {
    let (served, key) = item.resolve(&state)?;
    match served.cacher.get(&key)? {
        (Some(object), _) => Ok(object_response(served, StatusCode::OK, &object, object.revision())),
        (None, _) => Err(ApiError::not_found(&served.def.kind, &item.name)),
    }
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

async fn create(
    state: AppState,
    collection: Collection,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let served = collection.served(&state)?.clone();
    let Some(namespace) = collection.namespace.as_deref() else {
        return Err(ApiError::method_not_allowed("a collection of every namespace"));
    };
    let body = read_body(&state, &headers, body).await?;
    let submitted = Submitted::parse(&body, &served.def.kind, &served.api_version)?;
    let identity = Identity::new();
    let name = submitted.name(&identity.uid)?;
    let object = submitted.into_object(namespace, name.clone(), identity, served.def.node_name)?;
    served.metrics.encodes.inc();
    let key = served.key(namespace, &name);
    match served.producer.put_if(key, object, |current| current.is_none()).await {
        Ok(written) => Ok(written_response(&served, StatusCode::CREATED, written)),
        Err(ConditionalError::Rejected { .. }) => Err(ApiError::already_exists(&served.def.kind, &name)),
        Err(_) => Err(ApiError::unavailable("the server is shutting down")),
    }
}

fn written_response(served: &Served, code: StatusCode, written: watchcache::Written<Object>) -> Response {
    match written.object.as_deref().or(written.prev.as_deref()) {
        Some(object) => object_response(served, code, object, written.revision),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// How many times an update without a client precondition retries when another write
/// lands between its read and its write.
const UPDATE_ATTEMPTS: usize = 16;

async fn replace(state: AppState, item: Item, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let body = read_body(&state, &headers, body).await?;
    let served = item.resolve(&state)?.0.clone();
    let submitted = Submitted::parse(&body, &served.def.kind, &served.api_version)?;
    let client_revision = submitted.resource_version;
    update(&state, &item, client_revision, |_| Ok(submitted.clone())).await
}

/// The patch content types, each applied as a JSON merge patch (RFC 7386). A strategic
/// merge patch is the same for what is served here (maps, and lists replaced whole),
/// without its `$patch` directives.
const MERGE_PATCHES: [&str; 2] = ["application/merge-patch+json", "application/strategic-merge-patch+json"];

async fn patch(state: AppState, item: Item, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("");
    if !MERGE_PATCHES.iter().any(|merge| content_type.starts_with(merge)) {
        return Err(ApiError::unsupported_media_type(content_type, &MERGE_PATCHES));
    }
    let body = read_body(&state, &headers, body).await?;
    let patch: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("patch is not valid json: {error}")))?;
    // A `resourceVersion` in the patch is a precondition, as in Kubernetes.
    let client_revision = match patch["metadata"]["resourceVersion"].as_str() {
        Some(text) => Some(parse_resource_version(text)?),
        None => None,
    };
    let served = item.resolve(&state)?.0.clone();
    update(&state, &item, client_revision, |current| {
        let mut value = current.to_value(&served.head);
        json_patch::merge(&mut value, &patch);
        Submitted::from_value(value, &served.def.kind, &served.api_version)
    })
    .await
}

/// Replaces the object at `item` with `next(current)`, as a compare-and-swap on the
/// current revision (or on `client_revision`, which fails with 409 when stale).
async fn update(
    state: &State,
    item: &Item,
    client_revision: Option<u64>,
    next: impl Fn(&Object) -> Result<Submitted, ApiError>,
) -> Result<Response, ApiError> {
    let (served, key) = item.resolve(state)?;
    let namespace = item.collection.namespace.as_deref().unwrap_or_default();
    let kind = &served.def.kind;
    for _ in 0..UPDATE_ATTEMPTS {
        let (current, _) = served.cacher.get(&key)?;
        let Some(current) = current else { return Err(ApiError::not_found(kind, &item.name)) };
        let submitted = next(&current)?;
        if submitted.declared_name() != Some(item.name.as_str()) {
            return Err(ApiError::bad_request(format!(
                "metadata.name does not match the name in the path {:?}",
                item.name
            )));
        }
        let expected = client_revision.unwrap_or(current.revision());
        let object =
            submitted.into_object(namespace, item.name.clone(), current.identity(), served.def.node_name)?;
        served.metrics.encodes.inc();
        let check =
            move |current: Option<&Object>| current.is_some_and(|current| current.revision() == expected);
        match served.producer.put_if(key.clone(), object, check).await {
            Ok(written) => return Ok(written_response(served, StatusCode::OK, written)),
            Err(ConditionalError::Rejected { current: None }) => {
                return Err(ApiError::not_found(kind, &item.name))
            }
            Err(ConditionalError::Rejected { .. }) if client_revision.is_some() => {
                return Err(ApiError::conflict(kind, &item.name));
            }
            Err(ConditionalError::Rejected { .. }) => continue,
            Err(_) => return Err(ApiError::unavailable("the server is shutting down")),
        }
    }
    Err(ApiError::conflict(kind, &item.name))
}

/// `DeleteOptions`, of which the server reads the preconditions.
#[derive(Debug, Default, Deserialize)]
struct DeleteOptions {
    preconditions: Option<Preconditions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Preconditions {
    resource_version: Option<String>,
    uid: Option<String>,
}

async fn delete(state: AppState, item: Item, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let (served, key) = item.resolve(&state)?;
    let served = served.clone();
    let body = read_body(&state, &headers, body).await?;
    let options: DeleteOptions = if body.is_empty() {
        DeleteOptions::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|error| ApiError::bad_request(format!("invalid DeleteOptions: {error}")))?
    };
    let preconditions = options.preconditions.unwrap_or_default();
    let revision = preconditions.resource_version.as_deref().map(parse_resource_version).transpose()?;
    let uid = preconditions.uid;
    let has_preconditions = revision.is_some() || uid.is_some();
    let check = move |current: &Object| {
        revision.is_none_or(|revision| current.revision() == revision)
            && uid.as_ref().is_none_or(|uid| current.identity().uid == *uid)
    };
    let kind = &served.def.kind;
    match served.producer.delete_if(key, check).await {
        Ok(written) => Ok(written_response(&served, StatusCode::OK, written)),
        Err(ConditionalError::Rejected { current: Some(_) }) if has_preconditions => {
            Err(ApiError::conflict(kind, &item.name))
        }
        Err(ConditionalError::Rejected { .. }) => Err(ApiError::not_found(kind, &item.name)),
        Err(_) => Err(ApiError::unavailable("the server is shutting down")),
    }
}

/// Turns a handler's result into a response.
fn answer(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

// The routes: core (`/api/{version}`) and named groups (`/apis/{group}/{version}`) share
// every handler above; these only name the path's parts.

fn core(version: String, plural: String, namespace: Option<String>) -> Collection {
    Collection { group: String::new(), version, plural, namespace }
}

async fn core_all_namespaces(
    Extract(state): Extract<AppState>,
    Path((version, plural)): Path<(String, String)>,
    Query(query): Query<CollectionQuery>,
) -> Response {
    answer(collection(state, core(version, plural, None), query).await)
}

async fn core_collection(
    Extract(state): Extract<AppState>,
    Path((version, namespace, plural)): Path<(String, String, String)>,
    Query(query): Query<CollectionQuery>,
) -> Response {
    answer(collection(state, core(version, plural, Some(namespace)), query).await)
}

async fn core_create(
    Extract(state): Extract<AppState>,
    Path((version, namespace, plural)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(create(state, core(version, plural, Some(namespace)), headers, body).await)
}

type CoreItemPath = Path<(String, String, String, String)>;

fn core_item((version, namespace, plural, name): (String, String, String, String)) -> Item {
    Item { collection: core(version, plural, Some(namespace)), name }
}

async fn core_get(Extract(state): Extract<AppState>, Path(path): CoreItemPath) -> Response {
    answer(get_item(state, core_item(path)).await)
}

async fn core_replace(
    Extract(state): Extract<AppState>,
    Path(path): CoreItemPath,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(replace(state, core_item(path), headers, body).await)
}

async fn core_patch(
    Extract(state): Extract<AppState>,
    Path(path): CoreItemPath,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(patch(state, core_item(path), headers, body).await)
}

async fn core_delete(
    Extract(state): Extract<AppState>,
    Path(path): CoreItemPath,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(delete(state, core_item(path), headers, body).await)
}

fn group(group: String, version: String, plural: String, namespace: Option<String>) -> Collection {
    Collection { group, version, plural, namespace }
}

async fn group_all_namespaces(
    Extract(state): Extract<AppState>,
    Path((group_name, version, plural)): Path<(String, String, String)>,
    Query(query): Query<CollectionQuery>,
) -> Response {
    answer(collection(state, group(group_name, version, plural, None), query).await)
}

async fn group_collection(
    Extract(state): Extract<AppState>,
    Path((group_name, version, namespace, plural)): Path<(String, String, String, String)>,
    Query(query): Query<CollectionQuery>,
) -> Response {
    answer(collection(state, group(group_name, version, plural, Some(namespace)), query).await)
}

async fn group_create(
    Extract(state): Extract<AppState>,
    Path((group_name, version, namespace, plural)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(create(state, group(group_name, version, plural, Some(namespace)), headers, body).await)
}

type GroupItemPath = Path<(String, String, String, String, String)>;

fn group_item(
    (group_name, version, namespace, plural, name): (String, String, String, String, String),
) -> Item {
    Item { collection: group(group_name, version, plural, Some(namespace)), name }
}

async fn group_get(Extract(state): Extract<AppState>, Path(path): GroupItemPath) -> Response {
    answer(get_item(state, group_item(path)).await)
}

async fn group_replace(
    Extract(state): Extract<AppState>,
    Path(path): GroupItemPath,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(replace(state, group_item(path), headers, body).await)
}

async fn group_patch(
    Extract(state): Extract<AppState>,
    Path(path): GroupItemPath,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(patch(state, group_item(path), headers, body).await)
}

async fn group_delete(
    Extract(state): Extract<AppState>,
    Path(path): GroupItemPath,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(delete(state, group_item(path), headers, body).await)
}
