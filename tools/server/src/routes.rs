//! The routes: one handler per verb, each given its resolved resource by a path
//! extractor (the core group's `/api/{version}/…` and named groups' `/apis/{group}/…`
//! alike), returning `Result<Response, ApiError>`.

use crate::discovery;
use crate::negotiation::ReadAnswer;
use crate::query::{CollectionRequest, Query};
use crate::registry::Served;
use crate::state::AppState;
use crate::status::ApiError;
use crate::write::WriteOptions;
use crate::{auth, limits, list, negotiation, openapi, validation, watch, write};
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::HashMap;
use std::sync::Arc;
use watchcache::Readiness;

/// The router over `state`.
pub(crate) fn router(state: AppState) -> Router {
    const CORE: &str = "/api/{version}";
    const GROUP: &str = "/apis/{group}/{version}";
    let mut router = Router::new()
        .route("/api", get(discovery::core_versions))
        .route("/api/{version}", get(discovery::core_resources))
        .route("/apis", get(discovery::groups))
        .route("/apis/{group}/{version}", get(discovery::group_resources))
        .route("/version", get(discovery::version))
        .route("/openapi/v2", get(openapi::v2))
        .route("/openapi/v3", get(openapi::index))
        .route("/openapi/v3/api/{version}", get(openapi::core_document))
        .route("/openapi/v3/apis/{group}/{version}", get(openapi::group_document))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics));
    for root in [CORE, GROUP] {
        router = router
            // Every namespace's objects, or a cluster-scoped resource's.
            .route(&format!("{root}/{{plural}}"), get(collection).post(create))
            .route(
                &format!("{root}/{{plural}}/{{name}}"),
                get(get_item).put(replace).patch(patch).delete(delete),
            )
            .route(&format!("{root}/namespaces/{{namespace}}/{{plural}}"), get(collection).post(create))
            .route(
                &format!("{root}/namespaces/{{namespace}}/{{plural}}/{{name}}"),
                get(get_item).put(replace).patch(patch).delete(delete),
            );
    }
    router
        .fallback(|request: Request| async move { ApiError::no_such_path(request.uri().path()) })
        .method_not_allowed_fallback(|request: Request| async move {
            ApiError::method_not_allowed(request.uri().path())
        })
        // Layers run outside in: authentication first, then the limits, then what the
        // answer may be in.
        .layer(axum::middleware::from_fn(negotiation::acceptable))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .with_state(state)
}

/// The path's parameters, refused as a `Status` (a path that does not decode, say).
async fn path_parameters(parts: &mut Parts, state: &AppState) -> Result<HashMap<String, String>, ApiError> {
    let Path(parameters) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map_err(|rejection| ApiError::bad_request(format!("invalid path: {}", rejection.body_text())))?;
    Ok(parameters)
}

/// The resource and namespace a collection path names.
struct Collection {
    served: Arc<Served>,
    /// `None` for every namespace.
    namespace: Option<String>,
}

impl Collection {
    fn resolve(state: &AppState, parameters: &mut HashMap<String, String>) -> Result<Self, ApiError> {
        let mut take = |name: &str| parameters.remove(name).unwrap_or_default();
        let (group, version, plural) = (take("group"), take("version"), take("plural"));
        let namespace = parameters.remove("namespace");
        if let Some(namespace) = &namespace {
            validation::namespace_name(namespace)
                .map_err(|error| ApiError::bad_request(error.to_string()))?;
        }
        let served = state.registry.find(&group, &version, &plural)?.clone();
        if namespace.is_some() && !served.def.namespaced {
            return Err(ApiError::no_such_path(&format!(
                "namespaces/{}/{plural}",
                namespace.unwrap_or_default()
            )));
        }
        Ok(Self { served, namespace })
    }
}

impl FromRequestParts<AppState> for Collection {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Self::resolve(state, &mut path_parameters(parts, state).await?)
    }
}

/// The resource, namespace and name an object's path names.
struct Item {
    served: Arc<Served>,
    namespace: String,
    name: String,
}

impl FromRequestParts<AppState> for Item {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let mut parameters = path_parameters(parts, state).await?;
        let name = parameters.remove("name").unwrap_or_default();
        let Collection { served, namespace } = Collection::resolve(state, &mut parameters)?;
        if served.def.namespaced && namespace.is_none() {
            return Err(ApiError::no_such_path(&format!("{}/{name}", served.def.plural)));
        }
        validation::object_name("name", &name).map_err(|error| ApiError::bad_request(error.to_string()))?;
        Ok(Self { served, namespace: namespace.unwrap_or_default(), name })
    }
}

/// `GET` of a collection: a list, or a watch.
async fn collection(
    State(state): State<AppState>,
    Collection { served, namespace }: Collection,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(query.as_deref());
    let answer = ReadAnswer::of(served.answer(&headers)?, &query)?;
    match CollectionRequest::parse(&query, &served.def, namespace.as_deref())? {
        CollectionRequest::List(request) => list::list(&served, request, answer).await,
        CollectionRequest::Watch(request) => watch::respond(state, served, request, answer).await,
    }
}

/// The options in a write's query.
impl FromRequestParts<AppState> for WriteOptions {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        Self::parse(&Query::parse(parts.uri.query()))
    }
}

async fn create(
    State(state): State<AppState>,
    Collection { served, namespace }: Collection,
    options: WriteOptions,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    write::create(&state, &served, namespace.as_deref(), options, (headers, body)).await
}

async fn get_item(item: Item, headers: HeaderMap, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let query = Query::parse(query.as_deref());
    let answer = ReadAnswer::of(item.served.answer(&headers)?, &query)?;
    list::get(&item.served, (&item.namespace, &item.name), &query, answer).await
}

async fn replace(
    State(state): State<AppState>,
    item: Item,
    options: WriteOptions,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    write::replace(&state, &item.served, (&item.namespace, &item.name), options, (headers, body)).await
}

async fn patch(
    State(state): State<AppState>,
    item: Item,
    options: WriteOptions,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    write::patch(&state, &item.served, (&item.namespace, &item.name), options, (headers, body)).await
}

async fn delete(
    State(state): State<AppState>,
    item: Item,
    options: WriteOptions,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    write::delete(&state, &item.served, (&item.namespace, &item.name), options, (headers, body)).await
}

/// `/readyz`: 503 until every resource's cacher has its initial state (on etcd: until
/// its first list).
async fn ready(State(state): State<AppState>) -> Response {
    let pending =
        state.registry.all.iter().find(|served| served.delegator.cacher().readiness() != Readiness::Ready);
    match pending {
        None => "ok".into_response(),
        Some(served) => ApiError::unavailable(format!("{} is not ready", served.def.plural)).into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.metrics.encode();
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
        .into_response()
}
