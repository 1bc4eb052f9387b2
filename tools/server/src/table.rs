//! Server-side tables (`meta.k8s.io` `Table`), what `kubectl get` asks for
//! (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io, …`) and prints: the columns
//! kube-apiserver gives each built-in kind (pods: NAME, READY, STATUS, RESTARTS, AGE, and
//! with `-o wide` IP, NODE, …), NAME and AGE for a custom resource. Lists, gets and
//! watches answer with them (a watch: one table of one row per event).
//!
//! Each row carries the object as `includeObject` asks: its metadata by default (a
//! `PartialObjectMetadata`), the whole object, or nothing. A table is made per request,
//! from the object's stored encoding; unlike JSON, it is not shared between watchers (its
//! `AGE` column is of the moment it is sent), as in Kubernetes.

use crate::object::Object;
use crate::query::Query;
use crate::registry::Served;
use crate::status::ApiError;
use crate::BuiltIn;
use bytes::{BufMut, BytesMut};
use serde_json::{json, Map, Value};
use std::time::{Duration, SystemTime};

/// What a request asks of a table: its API version and what each row carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableRequest {
    /// `meta.k8s.io/v1` or `meta.k8s.io/v1beta1`, as the `Accept` entry chose.
    pub(crate) version: TableVersion,
    pub(crate) include: IncludeObject,
}

/// The `meta.k8s.io` version of a `Table`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableVersion {
    V1,
    V1Beta1,
}

impl TableVersion {
    /// The version an `Accept` entry's `v=` names, if served.
    pub(crate) fn parse(version: &str) -> Option<Self> {
        match version {
            "v1" => Some(Self::V1),
            "v1beta1" => Some(Self::V1Beta1),
            _ => None,
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            Self::V1 => "meta.k8s.io/v1",
            Self::V1Beta1 => "meta.k8s.io/v1beta1",
        }
    }
}

/// `includeObject`: what each row carries besides its cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IncludeObject {
    None,
    /// The default: the object's metadata, as a `PartialObjectMetadata`.
    Metadata,
    Object,
}

impl TableRequest {
    /// The table `version` asks for, with the query's `includeObject`.
    pub(crate) fn parse(version: TableVersion, query: &Query) -> Result<Self, ApiError> {
        let choices = [
            ("None", IncludeObject::None),
            ("Metadata", IncludeObject::Metadata),
            ("Object", IncludeObject::Object),
        ];
        let include = query.choice("includeObject", &choices, IncludeObject::Metadata)?;
        Ok(Self { version, include })
    }
}

/// One column of a table.
struct Column {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    description: &'static str,
    /// 0: always shown; 1: with `-o wide`.
    priority: u8,
}

const fn column(name: &'static str, kind: &'static str, description: &'static str, priority: u8) -> Column {
    Column { name, kind, format: "", description, priority }
}

const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    description: "Name must be unique within a namespace.",
    priority: 0,
};
const AGE: Column = column("Age", "string", "Time since the object was created.", 0);

/// The columns of `builtin` (`None`: a custom resource), as kube-apiserver prints them.
fn columns(builtin: Option<BuiltIn>) -> Vec<Column> {
    match builtin {
        Some(BuiltIn::ConfigMap) => {
            vec![NAME, column("Data", "integer", "The number of data entries.", 0), AGE]
        }
        Some(BuiltIn::Namespace) => {
            vec![NAME, column("Status", "string", "The namespace's phase: Active or Terminating.", 0), AGE]
        }
        Some(BuiltIn::Secret) => vec![
            NAME,
            column("Type", "string", "The type of the secret.", 0),
            column("Data", "integer", "The number of data entries.", 0),
            AGE,
        ],
        Some(BuiltIn::Pod) => vec![
            NAME,
            column("Ready", "string", "The ready containers of all containers.", 0),
            column("Status", "string", "The pod's phase, or why it is not running.", 0),
            column("Restarts", "integer", "The restarts of all containers.", 0),
            AGE,
            column("IP", "string", "The pod's IP address.", 1),
            column("Node", "string", "The node the pod is scheduled to.", 1),
            column("Nominated Node", "string", "The node the pod may preempt to.", 1),
            column("Readiness Gates", "string", "The readiness gates met of all.", 1),
        ],
        Some(BuiltIn::Event) => vec![
            column("Last Seen", "string", "Time since the event last happened.", 0),
            column("Type", "string", "The event's type.", 0),
            column("Reason", "string", "Why the event happened.", 0),
            column("Object", "string", "The object the event is about.", 0),
            column("Subobject", "string", "The part of the object the event is about.", 1),
            column("Source", "string", "The component that reported the event.", 1),
            column("Message", "string", "What happened.", 0),
            column("First Seen", "string", "Time since the event first happened.", 1),
            column("Count", "string", "How often the event happened.", 1),
            column("Name", "string", "The event's name.", 1),
        ],
        None => vec![NAME, AGE],
    }
}

/// `value`'s string at a dotted `path`, if set and not empty.
fn text<'a>(value: &'a Value, path: &str) -> Option<&'a str> {
    Some(crate::builtin::string_at(value, path)).filter(|text| !text.is_empty())
}

/// The entries of `value`'s object at `field`.
fn entries(value: &Value, field: &str) -> usize {
    value.get(field).and_then(Value::as_object).map_or(0, Map::len)
}

/// The time since an RFC 3339 timestamp, as `kubectl` prints it; `<unknown>` for none.
fn age_of(timestamp: Option<&str>, now: SystemTime) -> String {
    let Some(then) = timestamp.and_then(|text| humantime::parse_rfc3339_weak(text).ok()) else {
        return "<unknown>".into();
    };
    match now.duration_since(then) {
        Ok(elapsed) => human_duration(elapsed),
        // Up to a second ahead is clock skew: now.
        Err(ahead) if ahead.duration() <= Duration::from_secs(1) => "0s".into(),
        Err(_) => "<invalid>".into(),
    }
}

/// A duration in one or two units, coarser as it grows (apimachinery's `HumanDuration`
/// rules): `90s`, `5m3s`, `42m`, `7h12m`, `30h`, `3d4h`, `20d`, `2y40d`, `9y`.
fn human_duration(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    let (minutes, hours) = (seconds / 60, seconds / 3600);
    let (days, years) = (hours / 24, hours / (24 * 365));
    let pair = |big: u64, big_unit: &str, small: u64, small_unit: &str| {
        if small == 0 {
            format!("{big}{big_unit}")
        } else {
            format!("{big}{big_unit}{small}{small_unit}")
        }
    };
    match () {
        () if seconds < 120 => format!("{seconds}s"),
        () if minutes < 10 => pair(minutes, "m", seconds % 60, "s"),
        () if minutes < 180 => format!("{minutes}m"),
        () if hours < 8 => pair(hours, "h", minutes % 60, "m"),
        () if hours < 48 => format!("{hours}h"),
        () if hours < 24 * 8 => pair(days, "d", hours % 24, "h"),
        () if hours < 24 * 365 * 2 => format!("{days}d"),
        () if hours < 24 * 365 * 8 => pair(years, "y", days % 365, "d"),
        () => format!("{years}y"),
    }
}

/// A pod's READY, STATUS and RESTARTS: the ready running containers of all, the phase
/// (or the pod's reason, or the last container's waiting or terminated reason,
/// `Terminating` once deleted), and the restarts of all.
fn pod_state(pod: &Value) -> (String, String, u64) {
    let statuses = pod["status"]["containerStatuses"].as_array().map_or(&[][..], Vec::as_slice);
    let total = pod["spec"]["containers"].as_array().map_or(0, Vec::len);
    let mut ready = 0;
    let mut restarts = 0;
    let mut reason =
        text(pod, "status.reason").or_else(|| text(pod, "status.phase")).unwrap_or("").to_owned();
    let mut running = false;
    for status in statuses.iter().rev() {
        restarts += status["restartCount"].as_u64().unwrap_or(0);
        let state = &status["state"];
        if let Some(waiting) = text(state, "waiting.reason") {
            reason = waiting.to_owned();
        } else if let Some(terminated) = text(state, "terminated.reason") {
            reason = terminated.to_owned();
        } else if state.get("terminated").is_some() {
            reason = match state["terminated"]["signal"].as_i64().filter(|signal| *signal != 0) {
                Some(signal) => format!("Signal:{signal}"),
                None => format!("ExitCode:{}", state["terminated"]["exitCode"].as_i64().unwrap_or(0)),
            };
        } else if state.get("running").is_some() && status["ready"].as_bool() == Some(true) {
            running = true;
            ready += 1;
        }
    }
    if reason == "Completed" && running {
        reason = "Running".into();
    }
    if pod["metadata"].get("deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    (format!("{ready}/{total}"), reason, restarts)
}

/// The cells of `object` (its JSON) for `builtin`'s columns.
fn cells(builtin: Option<BuiltIn>, object: &Value, now: SystemTime) -> Vec<Value> {
    let name = json!(text(object, "metadata.name").unwrap_or(""));
    let age = json!(age_of(text(object, "metadata.creationTimestamp"), now));
    let none = |path: &str| json!(text(object, path).unwrap_or("<none>"));
    match builtin {
        Some(BuiltIn::ConfigMap) => {
            vec![name, json!(entries(object, "data") + entries(object, "binaryData")), age]
        }
        Some(BuiltIn::Secret) => {
            vec![name, json!(text(object, "type").unwrap_or("")), json!(entries(object, "data")), age]
        }
        Some(BuiltIn::Namespace) => vec![name, json!(text(object, "status.phase").unwrap_or("")), age],
        Some(BuiltIn::Pod) => {
            let (ready, status, restarts) = pod_state(object);
            let gates = object["spec"]["readinessGates"].as_array().map_or(0, Vec::len);
            let gates = if gates == 0 {
                json!("<none>")
            } else {
                let conditions = object["status"]["conditions"].as_array().map_or(&[][..], Vec::as_slice);
                let met = object["spec"]["readinessGates"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|gate| {
                        conditions.iter().any(|condition| {
                            condition["type"] == gate["conditionType"] && condition["status"] == "True"
                        })
                    })
                    .count();
                json!(format!("{met}/{gates}"))
            };
            vec![
                name,
                json!(ready),
                json!(status),
                json!(restarts),
                age,
                none("status.podIP"),
                none("spec.nodeName"),
                none("status.nominatedNodeName"),
                gates,
            ]
        }
        Some(BuiltIn::Event) => {
            let last = text(object, "lastTimestamp").or_else(|| text(object, "eventTime"));
            let first = text(object, "firstTimestamp").or_else(|| text(object, "eventTime"));
            let about = format!(
                "{}/{}",
                text(object, "involvedObject.kind").unwrap_or("").to_lowercase(),
                text(object, "involvedObject.name").unwrap_or("")
            );
            let source = match (text(object, "source.component"), text(object, "source.host")) {
                (Some(component), Some(host)) => format!("{component}, {host}"),
                (Some(only), None) | (None, Some(only)) => only.to_owned(),
                (None, None) => text(object, "reportingComponent").unwrap_or("").to_owned(),
            };
            vec![
                json!(age_of(last, now)),
                json!(text(object, "type").unwrap_or("")),
                json!(text(object, "reason").unwrap_or("")),
                json!(about),
                json!(text(object, "involvedObject.fieldPath").unwrap_or("")),
                json!(source),
                json!(text(object, "message").unwrap_or("").trim()),
                json!(age_of(first, now)),
                json!(object["count"].as_u64().unwrap_or(1).to_string()),
                name,
            ]
        }
        None => vec![name, age],
    }
}

/// Writes `objects` (each at its revision) as one `Table` of `served`'s, with the list's
/// `resourceVersion` and `continue`.
pub(crate) fn write_table<'o>(
    out: &mut BytesMut,
    (served, request): (&Served, TableRequest),
    objects: impl IntoIterator<Item = (&'o Object, u64)>,
    (revision, next): (u64, Option<&str>),
) {
    let now = SystemTime::now();
    let columns: Vec<Value> = columns(served.def.builtin)
        .iter()
        .map(|column| {
            json!({
                "name": column.name,
                "type": column.kind,
                "format": column.format,
                "description": column.description,
                "priority": column.priority,
            })
        })
        .collect();
    let rows: Vec<Value> = objects
        .into_iter()
        .map(|(object, revision)| {
            let mut written = BytesMut::new();
            object.write_json(&mut written, &served.head, revision);
            // Written by this server from a JSON object: it parses.
            let value: Value = serde_json::from_slice(&written).unwrap_or(Value::Null);
            let mut row = json!({ "cells": cells(served.def.builtin, &value, now) });
            match request.include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": request.version.api_version(),
                        "metadata": value["metadata"],
                    });
                }
                IncludeObject::Object => row["object"] = value,
            }
            row
        })
        .collect();
    let mut metadata = json!({ "resourceVersion": revision.to_string() });
    if let Some(next) = next {
        metadata["continue"] = json!(next);
    }
    let table = json!({
        "kind": "Table",
        "apiVersion": request.version.api_version(),
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    });
    out.put_slice(table.to_string().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_kubectl_prints_them() {
        for (seconds, printed) in [
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (303, "5m3s"),
            (42 * 60 + 5, "42m"),
            (3 * 3600, "3h"),
            (7 * 3600 + 12 * 60, "7h12m"),
            (30 * 3600, "30h"),
            (76 * 3600, "3d4h"),
            (20 * 86400, "20d"),
            ((2 * 365 + 40) * 86400, "2y40d"),
            (9 * 365 * 86400, "9y"),
        ] {
            assert_eq!(human_duration(Duration::from_secs(seconds)), printed, "{seconds}");
        }
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(age_of(Some("2001-09-09T01:46:40Z"), now), "0s");
        assert_eq!(age_of(Some("2001-09-09T01:46:41Z"), now), "0s", "a second ahead is skew");
        assert_eq!(age_of(Some("2001-09-09T01:45:40Z"), now), "60s");
        assert_eq!(age_of(Some("2001-09-09T01:47:40Z"), now), "<invalid>");
        assert_eq!(age_of(None, now), "<unknown>");
    }

    #[test]
    fn a_pods_cells_say_what_kubectl_says_of_it() {
        let pod = json!({
            "metadata": { "name": "web" },
            "spec": { "nodeName": "n1", "containers": [{ "name": "a" }, { "name": "b" }] },
            "status": {
                "phase": "Running",
                "podIP": "10.0.0.7",
                "containerStatuses": [
                    { "ready": true, "restartCount": 2, "state": { "running": {} } },
                    { "ready": false, "restartCount": 1, "state": { "waiting": { "reason": "CrashLoopBackOff" } } }
                ]
            }
        });
        let cells = cells(Some(BuiltIn::Pod), &pod, SystemTime::now());
        assert_eq!(cells[..4], [json!("web"), json!("1/2"), json!("CrashLoopBackOff"), json!(3)]);
        assert_eq!(cells[5..], [json!("10.0.0.7"), json!("n1"), json!("<none>"), json!("<none>")]);
        let pending = json!({ "metadata": { "name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z" } });
        assert_eq!(pod_state(&pending), ("0/0".into(), "Terminating".into(), 0));
        let exited =
            json!({ "status": { "containerStatuses": [{ "state": { "terminated": { "exitCode": 3 } } }] } });
        assert_eq!(pod_state(&exited).1, "ExitCode:3");
    }

    #[test]
    fn every_kind_has_a_cell_per_column() {
        let object = json!({ "metadata": { "name": "x" }, "data": { "a": "b" } });
        for builtin in [
            None,
            Some(BuiltIn::ConfigMap),
            Some(BuiltIn::Secret),
            Some(BuiltIn::Pod),
            Some(BuiltIn::Event),
            Some(BuiltIn::Namespace),
        ] {
            assert_eq!(
                columns(builtin).len(),
                cells(builtin, &object, SystemTime::now()).len(),
                "{builtin:?}"
            );
        }
        assert_eq!(cells(Some(BuiltIn::ConfigMap), &object, SystemTime::now())[1], json!(1));
    }
}
