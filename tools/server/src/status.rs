//! Errors as Kubernetes `Status` objects: the HTTP code, the machine-readable `reason`
//! clients branch on (`NotFound`, `AlreadyExists`, `Conflict`, `Expired`, …) and a
//! lowercase message for people.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::time::Duration;

/// A failed request, answered with a `Status` body.
#[derive(Debug, Clone)]
pub struct ApiError {
    code: StatusCode,
    reason: &'static str,
    message: String,
    retry_after: Option<Duration>,
    details: Option<(String, String)>,
    /// `details.causes[0]`.
    cause: Option<Cause>,
}

/// A machine-readable cause in a `Status`'s details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// A read at a `resourceVersion` the server has not reached (kube-apiserver's).
    ResourceVersionTooLarge,
}

impl Cause {
    /// The cause's type and message, as kube-apiserver writes them.
    fn parts(self) -> (&'static str, &'static str) {
        match self {
            Self::ResourceVersionTooLarge => ("ResourceVersionTooLarge", "Too large resource version"),
        }
    }
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), retry_after: None, details: None, cause: None }
    }

    fn about(mut self, kind: &str, name: &str) -> Self {
        self.details = Some((kind.to_lowercase(), name.to_owned()));
        self
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub(crate) fn not_found(kind: &str, name: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", format!("{} {name:?} not found", kind.to_lowercase()))
            .about(kind, name)
    }

    pub(crate) fn no_such_path(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource {path}"),
        )
    }

    pub(crate) fn method_not_allowed(path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("the method is not supported on {path}"),
        )
    }

    pub(crate) fn already_exists(kind: &str, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} {name:?} already exists", kind.to_lowercase()),
        )
        .about(kind, name)
    }

    pub(crate) fn conflict(kind: &str, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "operation cannot be fulfilled on {} {name:?}: the object has been modified; \
                 please apply your changes to the latest version and try again",
                kind.to_lowercase()
            ),
        )
        .about(kind, name)
    }

    /// A revision older than the window: the client must list again.
    pub(crate) fn expired(requested: u64, oldest: u64) -> Self {
        Self::new(StatusCode::GONE, "Expired", format!("too old resource version: {requested} ({oldest})"))
    }

    /// A `continue` token whose revision has left the window.
    pub(crate) fn continue_expired(requested: u64, oldest: u64) -> Self {
        Self::new(
            StatusCode::GONE,
            "Expired",
            format!(
                "the provided continue parameter is too old (resource version {requested}, oldest {oldest}); \
                 list again without it"
            ),
        )
    }

    /// A revision not reached in time: as kube-apiserver, 504 `Timeout` with the cause
    /// `ResourceVersionTooLarge` and a retry in a second.
    pub(crate) fn too_new(requested: u64, current: u64) -> Self {
        let mut error = Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            format!("too large resource version: {requested}, current: {current}"),
        );
        error.retry_after = Some(Duration::from_secs(1));
        error.cause = Some(Cause::ResourceVersionTooLarge);
        error
    }

    pub(crate) fn too_many_requests(message: impl Into<String>, retry_after: Duration) -> Self {
        let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", message);
        error.retry_after = Some(retry_after);
        error
    }

    pub(crate) fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("request body is larger than the limit of {limit} bytes"),
        )
    }

    pub(crate) fn unsupported_media_type(given: &str, supported: &[&str]) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format {given:?}; accepted: {}",
                supported.join(", ")
            ),
        )
    }

    /// No known bearer token (kube-apiserver's answer to an anonymous request when
    /// anonymous access is off).
    pub(crate) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "unauthorized: send a bearer token this server knows",
        )
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    /// A request that did not finish within the request timeout.
    pub(crate) fn timeout(limit: Duration) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            format!("the request did not complete within {} seconds", limit.as_secs()),
        )
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", message)
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        self.code.as_u16()
    }

    /// The message for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `Status` object (also the object of a watch's `ERROR` event).
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some((kind, name)) = &self.details {
            status["details"] = json!({ "name": name, "kind": kind });
        }
        if let Some(retry_after) = self.retry_after {
            status["details"]["retryAfterSeconds"] = json!(retry_after.as_secs().max(1));
        }
        if let Some((cause, message)) = self.cause.map(Cause::parts) {
            status["details"]["causes"] = json!([{ "reason": cause, "message": message }]);
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.to_status().to_string();
        let mut response = (self.code, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        if let Some(retry_after) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
        }
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code.as_u16())
    }
}

impl std::error::Error for ApiError {}

impl From<watchcache::ListError> for ApiError {
    fn from(error: watchcache::ListError) -> Self {
        use watchcache::ListError;
        match error {
            ListError::NotReady { retry_after } => {
                Self::too_many_requests("the cache is loading; retry shortly", retry_after)
            }
            ListError::TooNew { requested, current } => Self::too_new(requested, current),
            ListError::Expired { requested, oldest } => Self::expired(requested, oldest),
            ListError::InvalidOptions { reason } => Self::bad_request(reason),
            other => Self::unavailable(other.to_string()),
        }
    }
}
