//! Discovery: what `kubectl` reads to learn which resources exist and what they are
//! called (`/api`, `/api/v1`, `/apis`, `/apis/{group}/{version}`, `/version`).

use crate::registry::Served;
use crate::state::AppState;
use crate::status::ApiError;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

const VERBS: [&str; 6] = ["create", "delete", "get", "list", "update", "watch"];

pub(crate) async fn core_versions() -> Json<Value> {
    Json(json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": "" }],
    }))
}

pub(crate) async fn core_resources(State(state): State<AppState>, Path(version): Path<String>) -> Response {
    resource_list(&state.registry.all, "", &version)
}

pub(crate) async fn group_resources(
    State(state): State<AppState>,
    Path((group, version)): Path<(String, String)>,
) -> Response {
    resource_list(&state.registry.all, &group, &version)
}

fn resource_list(all: &[Arc<Served>], group: &str, version: &str) -> Response {
    let resources: Vec<Value> = all
        .iter()
        .map(|served| &served.def)
        .filter(|def| def.group == group && def.version == version)
        .map(|def| {
            json!({
                "name": def.plural,
                "singularName": def.kind.to_lowercase(),
                "namespaced": def.namespaced,
                "kind": def.kind,
                "verbs": VERBS,
                "shortNames": def.short_names,
            })
        })
        .collect();
    let group_version = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    if resources.is_empty() {
        let path =
            if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group_version}") };
        return ApiError::no_such_path(&path).into_response();
    }
    Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
    .into_response()
}

pub(crate) async fn groups(State(state): State<AppState>) -> Json<Value> {
    let groups: Vec<Value> = state
        .registry
        .groups()
        .into_iter()
        .map(|(name, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|version| json!({ "groupVersion": format!("{name}/{version}"), "version": version }))
                .collect();
            let preferred = versions.first().cloned().unwrap_or_default();
            json!({ "name": name, "preferredVersion": preferred, "versions": versions })
        })
        .collect();
    Json(json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups }))
}

pub(crate) async fn version() -> Json<Value> {
    Json(json!({
        "major": "1",
        "minor": "20",
        "gitVersion": concat!("v1.20.0-watchcache-", env!("CARGO_PKG_VERSION")),
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    }))
}
