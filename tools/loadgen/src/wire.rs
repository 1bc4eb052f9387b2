//! What a watch stream carries that the generator reads — each event's type and its
//! object's schedule annotations — in the two forms a Kubernetes API server writes: JSON
//! lines, or protobuf frames (each `WatchEvent` after its length as four big-endian
//! bytes, its object in the envelope: `k8s\0`, then a `runtime.Unknown` whose `raw` is the
//! object's message).
//!
//! The protobuf messages are declared with the few fields read, by their numbers in
//! Kubernetes' definitions; a message's other fields are skipped, as any protobuf reader
//! skips fields it does not declare.

use crate::config::Wire;
use serde::Deserialize;
use std::collections::HashMap;

/// One event of a watch, as far as the generator reads it.
pub(crate) struct WatchedEvent {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    pub(crate) kind: String,
    annotations: HashMap<String, String>,
}

impl WatchedEvent {
    /// The annotation `name` as a number of nanoseconds.
    pub(crate) fn stamp(&self, name: &str) -> Option<u64> {
        self.annotations.get(name).and_then(|value| value.parse().ok())
    }
}

/// Takes each whole event at the front of `body` (the response's bytes, dechunked),
/// leaving the start of the next one.
pub(crate) fn take_events(
    wire: Wire,
    body: &mut Vec<u8>,
    mut each: impl FnMut(WatchedEvent),
) -> Result<(), String> {
    let mut from = 0;
    match wire {
        Wire::Json => {
            while let Some(newline) = body[from..].iter().position(|&byte| byte == b'\n') {
                let line: JsonLine = serde_json::from_slice(&body[from..from + newline])
                    .map_err(|error| format!("a bad watch line: {error}"))?;
                from += newline + 1;
                each(WatchedEvent { kind: line.kind, annotations: line.object.metadata.annotations });
            }
        }
        Wire::Protobuf => {
            while let Some(length) = body.get(from..from + 4) {
                let length = u32::from_be_bytes(length.try_into().expect("four bytes")) as usize;
                let Some(frame) = body.get(from + 4..from + 4 + length) else { break };
                each(protobuf_event(frame)?);
                from += 4 + length;
            }
        }
    }
    body.drain(..from);
    Ok(())
}

fn protobuf_event(frame: &[u8]) -> Result<WatchedEvent, String> {
    use prost::Message;
    let bad = |error: prost::DecodeError| format!("a bad watch frame: {error}");
    let event = WatchEvent::decode(frame).map_err(bad)?;
    let envelope = event.object.unwrap_or_default().raw;
    let unknown = envelope.strip_prefix(b"k8s\0").ok_or("a watch frame's object is not in the envelope")?;
    let object = Object::decode(Unknown::decode(unknown).map_err(bad)?.raw.as_slice()).map_err(bad)?;
    Ok(WatchedEvent { kind: event.kind, annotations: object.metadata.unwrap_or_default().annotations })
}

#[derive(Deserialize)]
struct JsonLine {
    #[serde(rename = "type")]
    kind: String,
    object: JsonObject,
}

#[derive(Deserialize)]
struct JsonObject {
    #[serde(default)]
    metadata: JsonMetadata,
}

#[derive(Deserialize, Default)]
struct JsonMetadata {
    #[serde(default)]
    annotations: HashMap<String, String>,
}

/// `meta.v1.WatchEvent`.
#[derive(Clone, PartialEq, prost::Message)]
struct WatchEvent {
    #[prost(string, tag = "1")]
    kind: String,
    #[prost(message, optional, tag = "2")]
    object: Option<RawExtension>,
}

/// `runtime.RawExtension`.
#[derive(Clone, PartialEq, prost::Message)]
struct RawExtension {
    #[prost(bytes = "vec", tag = "1")]
    raw: Vec<u8>,
}

/// `runtime.Unknown`.
#[derive(Clone, PartialEq, prost::Message)]
struct Unknown {
    #[prost(bytes = "vec", tag = "2")]
    raw: Vec<u8>,
}

/// Any object: its `metadata`.
#[derive(Clone, PartialEq, prost::Message)]
struct Object {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
}

/// `meta.v1.ObjectMeta`.
#[derive(Clone, PartialEq, prost::Message)]
struct ObjectMeta {
    #[prost(map = "string, string", tag = "12")]
    annotations: HashMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn frame(kind: &str, annotations: &[(&str, &str)]) -> Vec<u8> {
        let metadata = ObjectMeta {
            annotations: annotations.iter().map(|(key, value)| ((*key).into(), (*value).into())).collect(),
        };
        let object = Object { metadata: Some(metadata) }.encode_to_vec();
        let envelope = [b"k8s\0".as_slice(), &Unknown { raw: object }.encode_to_vec()].concat();
        let event =
            WatchEvent { kind: kind.into(), object: Some(RawExtension { raw: envelope }) }.encode_to_vec();
        [(event.len() as u32).to_be_bytes().as_slice(), &event].concat()
    }

    #[test]
    fn whole_frames_are_taken_and_a_partial_one_is_kept() {
        let mut body = [frame("ADDED", &[("loadgen/sent", "7")]), frame("BOOKMARK", &[])].concat();
        let whole = body.len();
        let next = frame("MODIFIED", &[]);
        body.extend_from_slice(&next[..5]);
        let mut taken = Vec::new();
        take_events(Wire::Protobuf, &mut body, |event| {
            taken.push((event.kind.clone(), event.stamp("loadgen/sent")))
        })
        .unwrap();
        assert_eq!(taken, [("ADDED".to_owned(), Some(7)), ("BOOKMARK".to_owned(), None)]);
        assert_eq!(body, next[..5], "the partial frame waits ({whole} bytes taken)");
    }

    #[test]
    fn json_lines_are_taken_to_the_last_newline() {
        let mut body = br#"{"type":"ADDED","object":{"metadata":{"annotations":{"loadgen/sent":"3"}}}}
{"type":"DEL"#
            .to_vec();
        let mut taken = Vec::new();
        take_events(Wire::Json, &mut body, |event| {
            taken.push((event.kind.clone(), event.stamp("loadgen/sent")))
        })
        .unwrap();
        assert_eq!(taken, [("ADDED".to_owned(), Some(3))]);
        assert_eq!(body, br#"{"type":"DEL"#);
    }

    #[test]
    fn a_frame_that_is_not_an_enveloped_object_is_an_error() {
        let event = WatchEvent { kind: "ADDED".into(), object: Some(RawExtension { raw: b"{}".to_vec() }) };
        let event = event.encode_to_vec();
        let mut body = [(event.len() as u32).to_be_bytes().as_slice(), &event].concat();
        let error = take_events(Wire::Protobuf, &mut body, |_| {}).err().unwrap();
        assert!(error.contains("not in the envelope"), "{error}");
    }
}
