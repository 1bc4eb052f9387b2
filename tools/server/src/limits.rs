//! What keeps one client from taking the server from the others, as kube-apiserver's
//! filters do: requests in flight (reads and writes counted apart, watches not at all:
//! they are long-running and have their own cap), a time limit for everything but a
//! watch, and, on a loopback address, only loopback `Host` names (as `kubectl proxy`
//! filters them), so a web page cannot reach the server through DNS rebinding.

use crate::query::Query;
use crate::state::AppState;
use crate::status::ApiError;
use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// Whether `request` is a watch: long-running, outside the in-flight limits and the
/// request timeout.
fn is_watch(request: &Request) -> bool {
    request.method() == Method::GET && Query::raw_flag(request.uri().query(), "watch")
}

/// Answers 429 (with `Retry-After`) beyond the in-flight limits, 504 past the request
/// timeout.
pub(crate) async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if is_watch(&request) {
        return next.run(request).await;
    }
    let mutating = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let slots = if mutating { &state.mutating_slots } else { &state.reading_slots };
    let Ok(_slot) = slots.try_acquire() else {
        let what = if mutating { "writes" } else { "reads" };
        return ApiError::too_many_requests(
            format!("too many {what} in flight; retry shortly"),
            Duration::from_secs(1),
        )
        .into_response();
    };
    let timeout = state.settings.request_timeout;
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::timeout(timeout).into_response(),
    }
}

/// Whether a `Host` header names this machine by a loopback name.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        // An address with colons and no port (IPv6 unbracketed, which clients send too).
        None if host.parse::<std::net::IpAddr>().is_ok() => host,
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|address| address.is_loopback())
}

/// On a loopback listener: 403 for a request whose `Host` is not a loopback name.
pub(crate) async fn loopback_only(request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|value| value.to_str().ok());
    match host {
        Some(host) if !loopback_host(host) => {
            ApiError::forbidden(format!("host {host:?} is not this server's: it serves loopback names only"))
                .into_response()
        }
        _ => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::loopback_host;

    #[test]
    fn only_loopback_names_pass() {
        for host in
            ["localhost", "localhost:8080", "127.0.0.1:8080", "127.1.2.3", "[::1]:8080", "::1", "LOCALHOST"]
        {
            assert!(loopback_host(host), "{host}");
        }
        for host in
            ["evil.example", "evil.example:8080", "10.0.0.1:80", "localhost.evil.example", "[::2]:80", ""]
        {
            assert!(!loopback_host(host), "{host}");
        }
    }
}
