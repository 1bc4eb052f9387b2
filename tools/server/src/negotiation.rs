//! Which media type an API answer is in, chosen from `Accept` in the client's order as
//! kube-apiserver chooses: JSON (a watch: JSON lines), a `Table` of it
//! (`application/json;as=Table;v=v1;g=meta.k8s.io`, what `kubectl get` asks for first),
//! or with the `protobuf` feature, for a built-in kind, Kubernetes' protobuf (a watch:
//! length-prefixed `WatchEvent`s). A client whose `Accept` allows none of these for the
//! resource — protobuf alone for a custom resource, a conversion the server does not
//! make — gets 406 `NotAcceptable`, rather than an answer it did not ask for. Errors are
//! a JSON `Status` whatever was asked (clients read an answer by its `Content-Type`), but
//! for a watch's `ERROR` event, which is in the stream's form.

use crate::query::Query;
use crate::status::ApiError;
use crate::table::{TableRequest, TableVersion};
use axum::extract::Request;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Kubernetes' protobuf media type.
pub(crate) const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// What the server answers in, as the 406 lists them.
const SERVED: [&str; 2] = ["application/json", "application/json;as=Table;v=v1;g=meta.k8s.io"];

/// Whether the build serves protobuf (to the built-in kinds).
pub(crate) const PROTOBUF_SERVED: bool = cfg!(feature = "protobuf");

/// The form of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Json,
    /// A `meta.k8s.io` `Table` of the objects (lists, gets and watches; other answers
    /// stay JSON).
    Table(TableVersion),
    /// Kubernetes' protobuf (objects, lists and watches of a built-in kind; other answers
    /// stay JSON).
    Protobuf,
}

impl Answer {
    /// The first entry of an `Accept` value the server serves, skipping refused ones
    /// (`q=0`), with protobuf among them if `protobuf`; `None` when it serves none.
    fn chosen(accept: &str, protobuf: bool) -> Option<Self> {
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
                None if protobuf && is(PROTOBUF) => Some(Self::Protobuf),
                Some("Table") if is("application/json") && group == Some("meta.k8s.io") => {
                    version.and_then(TableVersion::parse).map(Self::Table)
                }
                _ => None,
            }
        })
    }

    /// The answer `headers` ask for, with protobuf among the choices if `protobuf` (the
    /// resource is a built-in kind and the build serves it): JSON without an `Accept`,
    /// 406 when nothing in it is served.
    pub(crate) fn of(headers: &HeaderMap, protobuf: bool) -> Result<Self, ApiError> {
        let mut given =
            headers.get_all(header::ACCEPT).iter().filter_map(|value| value.to_str().ok()).peekable();
        if given.peek().is_none() {
            return Ok(Self::Json);
        }
        given.find_map(|accept| Self::chosen(accept, protobuf)).ok_or_else(|| {
            let protobuf = protobuf.then_some(PROTOBUF);
            ApiError::not_acceptable(&SERVED.into_iter().chain(protobuf).collect::<Vec<_>>())
        })
    }
}

/// What a read (a list, a get, a watch) answers in: [`Answer`], with a table's options
/// from the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadAnswer {
    Json,
    Table(TableRequest),
    Protobuf,
}

impl ReadAnswer {
    pub(crate) fn of(answer: Answer, query: &Query) -> Result<Self, ApiError> {
        Ok(match answer {
            Answer::Json => Self::Json,
            Answer::Table(version) => Self::Table(TableRequest::parse(version, query)?),
            Answer::Protobuf => Self::Protobuf,
        })
    }

    /// The answer this is, without the table's options.
    pub(crate) fn answer(self) -> Answer {
        match self {
            Self::Json => Answer::Json,
            Self::Table(table) => Answer::Table(table.version),
            Self::Protobuf => Answer::Protobuf,
        }
    }
}

/// Refuses an API request (`/api…`, `/apis…`) whose `Accept` allows nothing the server
/// answers in, whatever its handler answers (a resource's handler then chooses among
/// what that resource is served in).
pub(crate) async fn acceptable(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let api = path == "/api" || path == "/apis" || path.starts_with("/api/") || path.starts_with("/apis/");
    if api {
        if let Err(error) = Answer::of(request.headers(), PROTOBUF_SERVED) {
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
            ("application/json;as=APIGroupDiscoveryList;v=v2;g=apidiscovery.k8s.io", None),
            ("application/json;as=Table;v=v1;g=other.io", None),
            ("application/json;q=0", None),
            ("text/html", None),
            ("", None),
        ] {
            assert_eq!(Answer::chosen(accept, false), chosen, "{accept}");
        }
    }

    #[test]
    fn protobuf_is_chosen_where_it_is_served_in_the_clients_order() {
        let protobuf = Some(Answer::Protobuf);
        for (accept, served, not_served) in [
            ("application/vnd.kubernetes.protobuf", protobuf, None),
            ("application/vnd.kubernetes.protobuf;stream=watch", protobuf, None),
            ("application/vnd.kubernetes.protobuf, application/json", protobuf, Some(Answer::Json)),
            ("application/json, application/vnd.kubernetes.protobuf", Some(Answer::Json), Some(Answer::Json)),
            (
                "application/vnd.kubernetes.protobuf;q=0, application/json",
                Some(Answer::Json),
                Some(Answer::Json),
            ),
            // A protobuf table is not made.
            ("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io", None, None),
        ] {
            assert_eq!(Answer::chosen(accept, true), served, "{accept}");
            assert_eq!(Answer::chosen(accept, false), not_served, "{accept}");
        }
    }
}
