//! Which media type an API answer is in, chosen from `Accept` in the client's order as
//! kube-apiserver chooses: JSON (a watch: JSON lines), or a `Table` of it
//! (`application/json;as=Table;v=v1;g=meta.k8s.io`, what `kubectl get` asks for first).
//! A client whose `Accept` allows neither — protobuf alone, or a conversion the server
//! does not make — gets 406 `NotAcceptable`, rather than JSON it did not ask for.

use crate::status::ApiError;
use crate::table::TableVersion;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What the server answers in, as the 406 lists them.
const SERVED: [&str; 2] = ["application/json", "application/json;as=Table;v=v1;g=meta.k8s.io"];

/// The form of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Json,
    /// A `meta.k8s.io` `Table` of the objects (lists, gets and watches; other answers
    /// stay JSON).
    Table(TableVersion),
}

impl Answer {
    /// The first entry of an `Accept` value the server serves, skipping refused ones
    /// (`q=0`); `None` when it serves none.
    fn chosen(accept: &str) -> Option<Self> {
        accept.split(',').find_map(|entry| {
            let mut parts = entry.split(';').map(str::trim);
            let media_type = parts.next().unwrap_or("");
            let (mut converted_to, mut group, mut version, mut refused) = (None, None, None, false);
            for parameter in parts {
                let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
                let value = value.trim();
                match name.trim().to_ascii_lowercase().as_str() {
                    "as" => converted_to = Some(value),
                    "g" => group = Some(value),
                    "v" => version = Some(value),
                    "q" => refused = value.parse::<f32>().is_ok_and(|q| q <= 0.0),
                    _ => {}
                }
            }
            let is = |served: &str| media_type.eq_ignore_ascii_case(served);
            match converted_to {
                _ if refused => None,
                None if is("application/json") || is("application/*") || is("*/*") => Some(Self::Json),
                Some("Table") if is("application/json") && group == Some("meta.k8s.io") => {
                    version.and_then(TableVersion::parse).map(Self::Table)
                }
                _ => None,
            }
        })
    }

    /// The answer `headers` ask for: JSON without an `Accept`, 406 when nothing in it
    /// is served.
    pub(crate) fn of(headers: &HeaderMap) -> Result<Self, ApiError> {
        let mut given =
            headers.get_all(header::ACCEPT).iter().filter_map(|value| value.to_str().ok()).peekable();
        if given.peek().is_none() {
            return Ok(Self::Json);
        }
        given.find_map(Self::chosen).ok_or_else(|| ApiError::not_acceptable(&SERVED))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Answer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Self::of(&parts.headers)
    }
}

/// Refuses an API request (`/api…`, `/apis…`) whose `Accept` allows nothing served,
/// whatever its handler answers.
pub(crate) async fn acceptable(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let api = path == "/api" || path == "/apis" || path.starts_with("/api/") || path.starts_with("/apis/");
    if api {
        if let Err(error) = Answer::of(request.headers()) {
            return error.into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::{Answer, TableVersion};

    #[test]
    fn the_first_served_entry_is_chosen_in_the_clients_order() {
        let table = Some(Answer::Table(TableVersion::V1));
        for (accept, chosen) in [
            ("application/json", Some(Answer::Json)),
            ("*/*", Some(Answer::Json)),
            ("application/json;stream=watch", Some(Answer::Json)),
            ("Application/JSON; charset=utf-8", Some(Answer::Json)),
            ("application/vnd.kubernetes.protobuf, application/json", Some(Answer::Json)),
            (
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
                table,
            ),
            ("application/json;as=Table;v=v1beta1;g=meta.k8s.io", Some(Answer::Table(TableVersion::V1Beta1))),
            ("application/json, application/json;as=Table;v=v1;g=meta.k8s.io", Some(Answer::Json)),
            ("application/json;as=Table;v=v2;g=meta.k8s.io,application/json", Some(Answer::Json)),
            ("application/*;q=0.5", Some(Answer::Json)),
            ("application/vnd.kubernetes.protobuf", None),
            ("application/vnd.kubernetes.protobuf;stream=watch", None),
            ("application/json;as=APIGroupDiscoveryList;v=v2;g=apidiscovery.k8s.io", None),
            ("application/json;as=Table;v=v1;g=other.io", None),
            ("application/json;q=0", None),
            ("text/html", None),
            ("", None),
        ] {
            assert_eq!(Answer::chosen(accept), chosen, "{accept}");
        }
    }
}
