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
    /// Boxed: most errors name no object, and every `Result` of the server carries one.
    details: Option<Box<Details>>,
    /// `details.causes`.
    causes: Vec<Cause>,
}

/// Which object a `Status` is about. `kind` is what Kubernetes puts there: the resource
/// (`configmaps`) for most errors, the kind (`ConfigMap`) for an invalid object.
#[derive(Debug, Clone)]
struct Details {
    name: String,
    group: String,
    kind: String,
}

impl Details {
    /// `name` of `resource`, group-qualified as Kubernetes writes it (`configmaps`,
    /// `widgets.example.com`): the details carry the plural and the group.
    fn of(resource: &str, name: &str) -> Self {
        let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
        Self { name: name.to_owned(), group: group.to_owned(), kind: plural.to_owned() }
    }

    fn to_json(&self) -> Value {
        let mut details = json!({ "name": self.name, "kind": self.kind });
        if !self.group.is_empty() {
            details["group"] = json!(self.group);
        }
        details
    }
}

/// A machine-readable cause in a `Status`'s details.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cause {
    /// A read at a `resourceVersion` the server has not reached (kube-apiserver's).
    ResourceVersionTooLarge,
    /// A field of the object that validation refused.
    Field(FieldError),
}

impl Cause {
    fn to_json(&self) -> Value {
        match self {
            Self::ResourceVersionTooLarge => {
                json!({ "reason": "ResourceVersionTooLarge", "message": "Too large resource version" })
            }
            Self::Field(error) => {
                json!({ "reason": error.reason.as_str(), "message": error.message(), "field": error.field })
            }
        }
    }
}

/// One field of an object that is not valid, as apimachinery's `field.Error` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    /// The field's path, e.g. `metadata.name`.
    pub(crate) field: String,
    pub(crate) reason: FieldReason,
    /// Why, for people.
    pub(crate) detail: String,
}

/// What is wrong with a field (a `Status` cause's `reason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldReason {
    /// The value given, which is not allowed.
    Invalid(String),
    /// A value is needed and none was given.
    Required,
}

impl FieldReason {
    fn as_str(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "FieldValueInvalid",
            Self::Required => "FieldValueRequired",
        }
    }
}

impl FieldError {
    pub(crate) fn invalid(field: impl Into<String>, value: &str, detail: impl Into<String>) -> Self {
        Self { field: field.into(), reason: FieldReason::Invalid(value.to_owned()), detail: detail.into() }
    }

    pub(crate) fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { field: field.into(), reason: FieldReason::Required, detail: detail.into() }
    }

    /// The cause's message: what is wrong, without the field.
    fn message(&self) -> String {
        match &self.reason {
            FieldReason::Invalid(value) => format!("invalid value {value:?}: {}", self.detail),
            FieldReason::Required => format!("required value: {}", self.detail),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message())
    }
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), retry_after: None, details: None, causes: Vec::new() }
    }

    /// Names the object: `resource` is group-qualified as Kubernetes writes it
    /// (`configmaps`, `widgets.example.com`); the details carry the plural and the group.
    fn about(mut self, resource: &str, name: &str) -> Self {
        self.details = Some(Box::new(Details::of(resource, name)));
        self
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// `resource` (group-qualified, as in [`Self::about`]) has no object `name`.
    pub(crate) fn not_found(resource: &str, name: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", format!("{resource} {name:?} not found"))
            .about(resource, name)
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

    pub(crate) fn already_exists(resource: &str, name: &str) -> Self {
        Self::new(StatusCode::CONFLICT, "AlreadyExists", format!("{resource} {name:?} already exists"))
            .about(resource, name)
    }

    /// An object of `resource` (group-qualified) validation refused: 422 `Invalid`, each
    /// field a cause, as Kubernetes answers (whose details name the kind, not the
    /// resource).
    pub(crate) fn invalid(resource: &str, kind: &str, name: &str, errors: Vec<FieldError>) -> Self {
        let listed: Vec<String> = errors.iter().map(FieldError::to_string).collect();
        let listed = match &listed[..] {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{resource} {name:?} is invalid: {listed}"),
        )
        .about(resource, name);
        if let Some(details) = &mut error.details {
            details.kind = kind.to_owned();
        }
        error.causes = errors.into_iter().map(Cause::Field).collect();
        error
    }

    pub(crate) fn conflict(resource: &str, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "operation cannot be fulfilled on {resource} {name:?}: the object has been modified; \
                 please apply your changes to the latest version and try again"
            ),
        )
        .about(resource, name)
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
        error.causes.push(Cause::ResourceVersionTooLarge);
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

    /// An `Accept` the server serves nothing of.
    pub(crate) fn not_acceptable(served: &[&str]) -> Self {
        Self::new(
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            format!("only the following media types are accepted: {}", served.join(", ")),
        )
    }

    /// A body type the server knows and does not take, and why.
    pub(crate) fn unsupported_media_type_because(given: &str, why: &str) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType", format!("{given:?}: {why}"))
    }

    /// A request that is well-formed and cannot be carried out on the object as it is
    /// (a json patch whose operation does not apply).
    pub(crate) fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
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

    /// Something the server should have been able to do; a fault of the server's.
    #[cfg(feature = "protobuf")]
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
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
        if let Some(details) = &self.details {
            status["details"] = details.to_json();
        }
        if let Some(retry_after) = self.retry_after {
            status["details"]["retryAfterSeconds"] = json!(retry_after.as_secs().max(1));
        }
        if !self.causes.is_empty() {
            status["details"]["causes"] = self.causes.iter().map(Cause::to_json).collect();
        }
        status
    }
}

/// The answer to a delete of a resource that does not answer with the deleted object: a
/// `Status` `Success` naming it, as kube-apiserver answers.
pub(crate) fn deleted(resource: &str, name: &str, uid: &str) -> Response {
    let mut details = Details::of(resource, name).to_json();
    if !uid.is_empty() {
        details["uid"] = json!(uid);
    }
    let status = json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details });
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], status.to_string()).into_response()
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
