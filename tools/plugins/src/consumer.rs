//! The `WatchConsumer` handler: a plugin of type [`PLUGIN_TYPE`] consumes a cacher's
//! events from outside the process, with no loss across its own restarts.
//!
//! Registration opens the `Consume` call on the plugin's endpoint (`proto/consumer.proto`).
//! The plugin's first message subscribes — a key prefix, a trigger value, and the last
//! revision it processed — and the host streams every matching event after the later of
//! that revision and the last one the plugin acknowledged (remembered per plugin name
//! across re-registrations). Deregistration ends the stream. A plugin that skips what it
//! already processed (events carry their revision) sees each event exactly once across
//! restarts; a resume point older than the cacher's window ends the stream (`Expired`).

use crate::reconciler::Handler;
use crate::registration::unix_channel;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::task::JoinHandle;
use watchcache::{Cacher, Event, Start, WatchError, WatchOptions};

/// The generated messages and services of `watchcache.consumer`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod proto {
    tonic::include_proto!("watchcache.consumer");
}

use proto::consumer_client::ConsumerClient;
use proto::from_plugin::Message;

/// The plugin type this handler registers.
pub const PLUGIN_TYPE: &str = "watch-consumer";

/// The protocol version this handler speaks.
pub const VERSION: &str = "v1";

/// How many events may wait for the plugin's connection before the watch is read again.
const IN_FLIGHT: usize = 256;

type Encode<T> = Arc<dyn Fn(&T) -> Vec<u8> + Send + Sync>;

/// One consumer plugin: its acknowledged revision (kept across registrations) and its
/// stream, while registered.
#[derive(Default)]
struct Consumer {
    acked: Arc<AtomicU64>,
    stream: Option<JoinHandle<()>>,
}

/// Streams a cacher's events to `watch-consumer` plugins.
pub struct WatchConsumer<T> {
    cacher: Cacher<T>,
    encode: Encode<T>,
    runtime: tokio::runtime::Handle,
    consumers: Mutex<HashMap<String, Consumer>>,
}

impl<T> std::fmt::Debug for WatchConsumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchConsumer").finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> WatchConsumer<T> {
    /// A handler streaming `cacher`'s events, each object as `encode` makes it, on the
    /// current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new(cacher: Cacher<T>, encode: impl Fn(&T) -> Vec<u8> + Send + Sync + 'static) -> Self {
        Self {
            cacher,
            encode: Arc::new(encode),
            runtime: tokio::runtime::Handle::current(),
            consumers: Mutex::new(HashMap::new()),
        }
    }

    /// The last revision `name` acknowledged (0 before any).
    pub fn acknowledged(&self, name: &str) -> u64 {
        self.lock().get(name).map_or(0, |consumer| consumer.acked.load(Ordering::Acquire))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Consumer>> {
        self.consumers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: Send + Sync + 'static> Handler for WatchConsumer<T> {
    fn validate(&self, _: &str, _: &Path, versions: &[String]) -> Result<(), String> {
        if versions.iter().any(|version| version == VERSION) {
            Ok(())
        } else {
            Err(format!("{PLUGIN_TYPE} speaks {VERSION}; the plugin offers {versions:?}"))
        }
    }

    fn register(&self, name: &str, endpoint: &Path, _: &[String]) -> Result<(), String> {
        let mut consumers = self.lock();
        let consumer = consumers.entry(name.to_owned()).or_default();
        if let Some(old) = consumer.stream.take() {
            old.abort();
        }
        let stream = Stream {
            cacher: self.cacher.clone(),
            encode: self.encode.clone(),
            endpoint: endpoint.to_owned(),
            acked: consumer.acked.clone(),
            name: name.to_owned(),
        };
        consumer.stream = Some(self.runtime.spawn(async move {
            if let Err(error) = stream.run().await {
                tracing::warn!(plugin = %stream.name, %error, "consumer stream ended");
            }
        }));
        Ok(())
    }

    fn deregister(&self, name: &str) {
        if let Some(stream) = self.lock().get_mut(name).and_then(|consumer| consumer.stream.take()) {
            stream.abort();
        }
    }
}

/// One registration's stream.
struct Stream<T> {
    cacher: Cacher<T>,
    encode: Encode<T>,
    endpoint: PathBuf,
    acked: Arc<AtomicU64>,
    name: String,
}

impl<T: Send + Sync + 'static> Stream<T> {
    async fn run(&self) -> Result<(), String> {
        let channel = unix_channel(&self.endpoint).await?;
        let (to_plugin, outbound) = tokio::sync::mpsc::channel::<proto::Event>(IN_FLIGHT);
        let response = ConsumerClient::new(channel)
            .consume(tokio_stream::wrappers::ReceiverStream::new(outbound))
            .await
            .map_err(|status| format!("Consume failed: {}", status.message()))?;
        let mut inbound = response.into_inner();
        let subscribe = match inbound.message().await {
            Ok(Some(proto::FromPlugin { message: Some(Message::Subscribe(subscribe)) })) => subscribe,
            Ok(_) => return Err("the plugin did not subscribe first".into()),
            Err(status) => return Err(format!("the plugin's stream failed: {}", status.message())),
        };
        self.acked.fetch_max(subscribe.resume_after, Ordering::AcqRel);
        let mut from = self.acked.load(Ordering::Acquire);
        loop {
            let mut options =
                WatchOptions::new().prefix(subscribe.prefix.clone()).start(Start::Revision(from));
            if !subscribe.trigger.is_empty() {
                options = options.trigger(subscribe.trigger.clone());
            }
            let mut watch = self.cacher.watch(options).map_err(|error| error.to_string())?;
            let ended = loop {
                tokio::select! {
                    message = inbound.message() => match message {
                        Ok(Some(proto::FromPlugin { message: Some(Message::Ack(revision)) })) => {
                            self.acked.fetch_max(revision, Ordering::AcqRel);
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => return Ok(()),
                        Err(status) => return Err(format!("the plugin's stream failed: {}", status.message())),
                    },
                    item = watch.next() => match item {
                        Some(Ok(event)) => {
                            if let Some(event) = self.encoded(&event) {
                                if to_plugin.send(event).await.is_err() {
                                    return Ok(());
                                }
                            }
                        }
                        Some(Err(error)) => break error,
                        None => return Ok(()),
                    },
                }
            };
            match ended {
                // Too slow: everything up to `resume_from` went out; go on from there.
                WatchError::TooSlow { resume_from } => from = resume_from,
                other => return Err(other.to_string()),
            }
        }
    }

    fn encoded(&self, event: &Event<T>) -> Option<proto::Event> {
        let kind = match event {
            Event::Added { .. } => "ADDED",
            Event::Modified { .. } => "MODIFIED",
            Event::Deleted { .. } => "DELETED",
            Event::Bookmark { .. } => return None,
        };
        Some(proto::Event {
            r#type: kind.to_owned(),
            key: event.key()?.to_string(),
            object: (self.encode)(event.object()?),
            revision: event.revision(),
        })
    }
}
