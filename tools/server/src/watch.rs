//! Watch responses: one JSON event per line (or for a protobuf client, one
//! length-prefixed `WatchEvent` each), streamed as the cacher delivers.
//!
//! Each chunk is the events of one batch the watch read (up to [`BATCH`]), written from
//! the objects' stored encodings: nothing is encoded per watcher. The stream ends
//! at `timeoutSeconds`, when the server shuts down (cleanly, after the lines it has), or
//! after an `ERROR` event when the watch cannot go on (`Expired`, too slow, too new).

use crate::negotiation::ReadAnswer;
use crate::query::WatchRequest;
use crate::registry::Served;
use crate::state::AppState;
use crate::status::ApiError;
use crate::storage::{Prelude, StorageError};
use crate::table::write_table;
use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use watchcache::{EventRef, Watch, WatchError};

/// The most events written per chunk.
const BATCH: usize = 256;
/// About the most bytes written per chunk. A client that does not read holds one chunk
/// in the connection (and the socket's buffers): the events it has not read wait in
/// the cacher, shared with every other watch, not copied into its connection.
const CHUNK_BYTES: usize = 256 * 1024;
/// The line size a watch assumes before it has written one: its first chunk is one event;
/// later chunks take as many as fit at the longest line it has written.
const FIRST_GUESS: usize = CHUNK_BYTES;

/// Starts a watch and answers with its stream.
pub(crate) async fn respond(
    state: AppState,
    served: Arc<Served>,
    request: WatchRequest,
    answer: ReadAnswer,
) -> Result<Response, ApiError> {
    let permit = state.watch_slots.clone().try_acquire_owned().map_err(|_| {
        ApiError::too_many_requests("too many watches open; retry later", Duration::from_secs(1))
    })?;
    let lines = Lines {
        served: served.clone(),
        bookmarks: request.bookmarks,
        initial_events_end: request.initial_events_end,
        answer,
    };
    let content_type = if answer == ReadAnswer::Protobuf { PROTOBUF_WATCH } else { "application/json" };
    let watched = match served.delegator.watch(&request.selection, request.start, request.bookmarks).await {
        Ok(watched) => watched,
        // Kubernetes answers these with a stream of one `ERROR` event.
        Err(StorageError::Compacted { requested, oldest }) => {
            let mut out = BytesMut::new();
            lines.error(&mut out, &WatchError::Expired { requested, oldest });
            return Ok(stream_response(content_type, Body::from(out.freeze())));
        }
        Err(error) => return Err(error.into()),
    };
    let mut first = BytesMut::new();
    for event in &watched.prelude {
        lines.prelude(&mut first, event)?;
    }
    served.metrics.deliveries.inc_by(watched.prelude.len() as u64);
    let open = served.metrics.watches_open.clone();
    open.inc();
    let stream = WatchStream {
        watch: Some(watched.watch),
        first: (!first.is_empty()).then(|| first.freeze()),
        lines,
        // A deadline too far to represent is none.
        deadline: request.timeout.and_then(|timeout| Instant::now().checked_add(timeout)),
        shutting_down: state.shutting_down.clone(),
        deliveries: served.metrics.deliveries.clone(),
        largest_line: None,
        _open: OpenWatch(open),
        _permit: permit,
    };
    let body = futures_util::stream::unfold(stream, |mut stream| async move {
        let chunk = stream.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), stream))
    });
    Ok(stream_response(content_type, Body::from_stream(body)))
}

/// A protobuf watch's media type, as kube-apiserver names it.
const PROTOBUF_WATCH: &str = "application/vnd.kubernetes.protobuf;stream=watch";

fn stream_response(content_type: &'static str, body: Body) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// Keeps `watches_open` right however the response ends (finished, or dropped by a
/// client that went away).
struct OpenWatch(Gauge);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.dec();
    }
}

struct WatchStream {
    /// `None` once the watch has ended and its last lines are sent.
    watch: Option<Watch<crate::Object>>,
    /// The prelude's lines, sent first.
    first: Option<Bytes>,
    lines: Lines,
    deadline: Option<Instant>,
    shutting_down: tokio::sync::watch::Receiver<bool>,
    deliveries: Counter,
    /// The longest line written so far: how many events the next chunk may take and stay
    /// within [`CHUNK_BYTES`] (a burst of objects far larger than any before it may
    /// overshoot once, by that many of them).
    largest_line: Option<usize>,
    _open: OpenWatch,
    _permit: OwnedSemaphorePermit,
}

impl WatchStream {
    /// The next chunk of lines; `None` when the response is complete.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        loop {
            let watch = self.watch.as_mut()?;
            let mut out = BytesMut::new();
            let (mut delivered, mut largest) = (0, self.largest_line.unwrap_or(0));
            let lines = &self.lines;
            let deadline = self.deadline;
            let limit = (CHUNK_BYTES / self.largest_line.unwrap_or(FIRST_GUESS).max(1)).clamp(1, BATCH);
            // An event that cannot be written ends the watch there, with an `ERROR`
            // saying why: a watch misses no event silently.
            let mut failed = None;
            let write = |event: EventRef<'_, crate::Object>| {
                if failed.is_some() {
                    return;
                }
                let before = out.len();
                match lines.event(&mut out, event) {
                    Ok(written) => delivered += written,
                    Err(error) => failed = Some(error),
                }
                largest = largest.max(out.len() - before);
            };
            let read = tokio::select! {
                read = watch.visit_async(limit, write) => read,
                _ = self.shutting_down.wait_for(|down| *down) => Err(WatchError::Closed),
                _ = sleep_until(deadline) => Err(WatchError::Closed),
            };
            self.deliveries.inc_by(delivered);
            if largest > 0 {
                self.largest_line = Some(largest);
            }
            if let Some(error) = failed {
                self.watch = None;
                lines.status(&mut out, &error);
            } else if let Err(error) = read {
                self.watch = None;
                lines.error(&mut out, &error);
            }
            if !out.is_empty() {
                return Some(out.freeze());
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Writes events as watch lines for one resource.
struct Lines {
    served: Arc<Served>,
    /// Whether the client asked for periodic bookmarks.
    bookmarks: bool,
    /// Whether the client asked for the bookmark that ends the initial events.
    initial_events_end: bool,
    /// JSON lines, each event's object as a table of one row (`kubectl get -w`, made per
    /// watch), or protobuf frames.
    answer: ReadAnswer,
}

impl Lines {
    /// Writes `event`'s line, if the client wants it; returns the objects written (0 or 1).
    fn event(&self, out: &mut BytesMut, event: EventRef<'_, crate::Object>) -> Result<u64, ApiError> {
        let (kind, object, revision) = match event {
            // An object's own revision: for an initial event, the one that last wrote it.
            EventRef::Added { object, .. } => ("ADDED", object, object.revision()),
            EventRef::Modified { object, .. } => ("MODIFIED", object, object.revision()),
            // The deleting revision, as Kubernetes sets it on the last state it sends.
            EventRef::Deleted { object, revision, .. } => ("DELETED", object, revision),
            EventRef::Bookmark { revision, initial_events_end } => {
                if (initial_events_end && self.initial_events_end) || (!initial_events_end && self.bookmarks)
                {
                    self.bookmark(out, revision, initial_events_end);
                }
                return Ok(0);
            }
        };
        self.line(out, kind, object, revision)?;
        Ok(1)
    }

    /// A prelude event's line (a watch from before the cacher's window).
    fn prelude(&self, out: &mut BytesMut, event: &Prelude) -> Result<(), ApiError> {
        let (kind, object, revision) = match event {
            Prelude::Added(object) => ("ADDED", object, object.revision()),
            Prelude::Modified(object) => ("MODIFIED", object, object.revision()),
            Prelude::Deleted(object, revision) => ("DELETED", object, *revision),
        };
        self.line(out, kind, object, revision)
    }

    /// `object`'s event of `kind`; `Err` if it has no encoding in the watch's form.
    fn line(
        &self,
        out: &mut BytesMut,
        kind: &str,
        object: &crate::Object,
        revision: u64,
    ) -> Result<(), ApiError> {
        #[cfg(feature = "protobuf")]
        if let Some(codec) = self.served.codec(self.answer.answer()) {
            codec.event(out, kind, self.served.encoded(codec, object)?, revision);
            return Ok(());
        }
        out.put_slice(br#"{"type":""#);
        out.put_slice(kind.as_bytes());
        out.put_slice(br#"","object":"#);
        match self.answer {
            ReadAnswer::Table(table) => {
                write_table(out, (&self.served, table), [(object, revision)], (revision, None))
            }
            ReadAnswer::Json | ReadAnswer::Protobuf => object.write_json(out, &self.served.head, revision),
        }
        out.put_slice(b"}\n");
        Ok(())
    }

    fn bookmark(&self, out: &mut BytesMut, revision: u64, initial_events_end: bool) {
        #[cfg(feature = "protobuf")]
        if let Some(codec) = self.served.codec(self.answer.answer()) {
            codec.bookmark(out, revision, initial_events_end);
            return;
        }
        let annotations =
            if initial_events_end { r#","annotations":{"k8s.io/initial-events-end":"true"}"# } else { "" };
        out.put_slice(
            format!(
                r#"{{"type":"BOOKMARK","object":{{"kind":"{}","apiVersion":"{}","metadata":{{"resourceVersion":"{revision}"{annotations}}}}}}}"#,
                self.served.def.kind, self.served.api_version
            )
            .as_bytes(),
        );
        out.put_u8(b'\n');
    }

    /// The line that ends a watch that cannot go on; nothing for a clean end.
    fn error(&self, out: &mut BytesMut, error: &WatchError) {
        let status = match *error {
            WatchError::Closed => return,
            WatchError::Expired { requested, oldest } => ApiError::expired(requested, oldest),
            // Resuming from `resume_from` works, but clients treat 410 as "list again",
            // which is what Kubernetes tells a watcher it dropped.
            WatchError::TooSlow { resume_from } => ApiError::expired(resume_from, resume_from),
            WatchError::TooNew { requested, current } => ApiError::too_new(requested, current),
            ref other => ApiError::unavailable(other.to_string()),
        };
        self.status(out, &status);
    }

    /// The `ERROR` event that ends a watch with `status`.
    fn status(&self, out: &mut BytesMut, status: &ApiError) {
        #[cfg(feature = "protobuf")]
        if let Some(codec) = self.served.codec(self.answer.answer()) {
            codec.error_event(out, &status.to_status());
            return;
        }
        out.put_slice(br#"{"type":"ERROR","object":"#);
        out.put_slice(status.to_status().to_string().as_bytes());
        out.put_slice(b"}\n");
    }
}
