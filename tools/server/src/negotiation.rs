//! Which media type an API answer is in. The server answers JSON (a watch: JSON lines);
//! a client whose `Accept` allows no JSON — protobuf alone, or a `Table` with no plain
//! JSON beside it — gets 406 `NotAcceptable`, as kube-apiserver answers a media type it
//! does not serve, rather than JSON it did not ask for.

use crate::status::ApiError;
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What the server answers in, as the 406 lists them.
const SERVED: [&str; 1] = ["application/json"];

/// Whether an `Accept` value allows a JSON answer: an entry for `application/json`,
/// `application/*` or `*/*` that asks for no conversion (`as=`, as `as=Table`) and is not
/// refused (`q=0`). No header allows anything.
fn allows_json(accept: &str) -> bool {
    accept.split(',').any(|entry| {
        let mut parts = entry.split(';').map(str::trim);
        let media_type = parts.next().unwrap_or("");
        let json = ["application/json", "application/*", "*/*"]
            .iter()
            .any(|served| media_type.eq_ignore_ascii_case(served));
        let mut converted = false;
        let mut refused = false;
        for parameter in parts {
            let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            match name.trim().to_ascii_lowercase().as_str() {
                "as" => converted = true,
                "q" => refused = value.trim().parse::<f32>().is_ok_and(|q| q <= 0.0),
                _ => {}
            }
        }
        json && !converted && !refused
    })
}

/// Refuses an API request (`/api…`, `/apis…`) whose `Accept` allows nothing served.
pub(crate) async fn acceptable(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let api = path == "/api" || path == "/apis" || path.starts_with("/api/") || path.starts_with("/apis/");
    let accept = request.headers().get_all(header::ACCEPT).iter().filter_map(|value| value.to_str().ok());
    let accept: Vec<&str> = accept.collect();
    if api && !accept.is_empty() && !accept.iter().any(|value| allows_json(value)) {
        return ApiError::not_acceptable(&SERVED).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::allows_json;

    #[test]
    fn json_is_allowed_unless_only_other_types_or_conversions_are_asked_for() {
        for allowed in [
            "application/json",
            "*/*",
            "application/json, */*",
            "application/json;stream=watch",
            "Application/JSON; charset=utf-8",
            "application/vnd.kubernetes.protobuf, application/json",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
            "application/*;q=0.5",
        ] {
            assert!(allows_json(allowed), "{allowed}");
        }
        for refused in [
            "application/vnd.kubernetes.protobuf",
            "application/vnd.kubernetes.protobuf;stream=watch",
            "application/json;as=Table;v=v1;g=meta.k8s.io",
            "application/json;q=0",
            "text/html",
            "",
        ] {
            assert!(!allows_json(refused), "{refused}");
        }
    }
}
