//! One resource's reflector: keeps its cacher equal to etcd through the cacher's upstream
//! handle, as kube-apiserver's Cacher reflects etcd — but a broken watch never closes a
//! client's watch.
//!
//! It lists the resource's prefix in pages (the first page's revision for every later
//! page), relists it into the cacher, then watches from the next revision with previous
//! values and progress notifications, passing each revision's events on together. When
//! the watch breaks it watches again from where it was; when etcd has compacted past
//! that, it lists again and the cacher delivers the difference to the open watches.
//! Failures are retried with a backoff (200 ms doubling to 10 s).
//!
//! # Progress, on an etcd that races it
//!
//! etcd 3.4.23 (Debian's) can send a progress notification ahead of events it has not
//! sent yet (etcd issues #15220 and #17507). Passing its revision on would let the cacher
//! claim a revision whose changes it lacks. So a revision reached without an event —
//! from a progress notification, or asked for by a consistent read — is passed on only
//! once etcd confirms it: a keys-only range over the prefix, filtered to keys modified
//! after the last revision passed on, that finds none, with the prefix holding as many
//! keys as the reflector has seen (so nothing was deleted either). That says the
//! prefix did not change between the two revisions, whatever order the watch delivers
//! things in.

use super::etcd::{compacted, prefix_end, revision, Keys, PAGE};
use crate::object::Object;
use etcd_client::{Client, Event, EventType, GetOptions, WatchOptions};
use prometheus_client::metrics::counter::Counter;
use std::fmt;
use std::time::Duration;
use tokio::sync::mpsc;
use watchcache::{Change, Upstream, UpstreamError};

const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The running reflector, as its storage holds it.
pub(crate) struct ReflectorHandle {
    /// Revisions a consistent read waits for.
    wanted: mpsc::UnboundedSender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for ReflectorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReflectorHandle").field("running", &!self.task.is_finished()).finish()
    }
}

impl ReflectorHandle {
    /// A read waits for the cacher to reach `revision`: confirm it with etcd.
    pub(crate) fn want(&self, revision: u64) {
        // Refused only once the reflector has stopped; the read then times out.
        let _ = self.wanted.send(revision);
    }

    pub(crate) fn stop(&self) {
        self.task.abort();
    }
}

/// Why the reflector stopped listing or watching.
enum Interrupted {
    /// etcd no longer has the revision: list again.
    Compacted,
    /// etcd did not answer, or the watch broke: retry after a backoff.
    Etcd(String),
    /// The cacher shut down.
    Stopped,
}

impl From<etcd_client::Error> for Interrupted {
    fn from(error: etcd_client::Error) -> Self {
        if compacted(&error) {
            Self::Compacted
        } else {
            Self::Etcd(error.to_string())
        }
    }
}

impl<P> From<UpstreamError<P>> for Interrupted {
    fn from(error: UpstreamError<P>) -> Self {
        match error {
            UpstreamError::Closed(_) => Self::Stopped,
            // etcd went back in time (restored from a backup): start over from a list.
            other => Self::Etcd(other.to_string()),
        }
    }
}

pub(crate) struct Reflector {
    client: Client,
    keys: Keys,
    upstream: Upstream<Object>,
    /// The last revision passed on to the cacher (0 before the first list).
    last: u64,
    /// How many keys etcd holds under the prefix at `last` (objects or not).
    etcd_keys: i64,
    /// The newest revision a progress notification or a read asked to confirm.
    wanted: u64,
    requests: mpsc::UnboundedReceiver<u64>,
    relists: Counter,
}

impl Reflector {
    /// Starts reflecting `keys` from `client` into `upstream` on the current runtime.
    pub(crate) fn start(
        client: Client,
        keys: Keys,
        upstream: Upstream<Object>,
        relists: Counter,
    ) -> ReflectorHandle {
        let (wanted, requests) = mpsc::unbounded_channel();
        let reflector = Self { client, keys, upstream, last: 0, etcd_keys: 0, wanted: 0, requests, relists };
        ReflectorHandle { wanted, task: tokio::spawn(reflector.run()) }
    }

    async fn run(mut self) {
        let mut backoff = BACKOFF_FIRST;
        let mut must_list = true;
        loop {
            let interrupted = if must_list {
                match self.list().await {
                    Ok(()) => {
                        must_list = false;
                        backoff = BACKOFF_FIRST;
                        continue;
                    }
                    Err(interrupted) => interrupted,
                }
            } else {
                self.watch(&mut backoff).await
            };
            match interrupted {
                Interrupted::Stopped => return,
                Interrupted::Compacted => {
                    tracing::info!(prefix = %self.keys.prefix, after = self.last, "etcd compacted past the watch; relisting");
                    must_list = true;
                }
                Interrupted::Etcd(error) => {
                    tracing::warn!(prefix = %self.keys.prefix, %error, retry_in = ?backoff, "etcd");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Lists the prefix page by page at one revision and relists it into the cacher.
    async fn list(&mut self) -> Result<(), Interrupted> {
        let end = prefix_end(&self.keys.prefix);
        let mut from = self.keys.prefix.clone().into_bytes();
        let mut at = None;
        let (mut state, mut etcd_keys) = (Vec::new(), 0);
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if let Some(at) = at {
                options = options.with_revision(at);
            }
            let response = self.client.get(from.clone(), Some(options)).await?;
            let page_revision = response.header().map_or(0, |header| header.revision());
            let at = *at.get_or_insert(page_revision);
            etcd_keys += response.kvs().len() as i64;
            state.extend(response.kvs().iter().filter_map(|kv| self.keys.decode(kv)));
            match response.kvs().last() {
                Some(last) if response.more() => from = [last.key(), b"\0"].concat(),
                _ => {
                    let at = revision(at);
                    self.upstream.relist_async(at, state).await?;
                    self.relists.inc();
                    (self.last, self.etcd_keys) = (at, etcd_keys);
                    return Ok(());
                }
            }
        }
    }

    /// Watches from the next revision until the watch ends; says why it did.
    async fn watch(&mut self, backoff: &mut Duration) -> Interrupted {
        let options = WatchOptions::new()
            .with_range(prefix_end(&self.keys.prefix))
            .with_start_revision(i64::try_from(self.last + 1).unwrap_or(i64::MAX))
            .with_prev_key()
            .with_progress_notify();
        let mut stream = match self.client.watch(self.keys.prefix.as_str(), Some(options)).await {
            Ok(stream) => stream,
            Err(error) => return error.into(),
        };
        loop {
            tokio::select! {
                message = stream.message() => {
                    let response = match message {
                        Ok(Some(response)) => response,
                        Ok(None) => return Interrupted::Etcd("the watch stream ended".into()),
                        Err(error) => return error.into(),
                    };
                    if response.canceled() {
                        return match response.compact_revision() {
                            0 => Interrupted::Etcd(format!("the watch was canceled: {}", response.cancel_reason())),
                            _ => Interrupted::Compacted,
                        };
                    }
                    *backoff = BACKOFF_FIRST;
                    if response.events().is_empty() {
                        if !response.created() {
                            let notified = response.header().map_or(0, |header| revision(header.revision()));
                            self.wanted = self.wanted.max(notified);
                        }
                    } else if let Err(interrupted) = self.apply(response.events()).await {
                        return interrupted;
                    }
                }
                Some(wanted) = self.requests.recv() => self.wanted = self.wanted.max(wanted),
            }
            if self.wanted > self.last {
                if let Err(interrupted) = self.confirm_progress().await {
                    return interrupted;
                }
            }
        }
    }

    /// Passes on `events`, each revision's together, in order.
    async fn apply(&mut self, events: &[Event]) -> Result<(), Interrupted> {
        for group in events.chunk_by(|a, b| modified_at(a) == modified_at(b)) {
            let at = modified_at(&group[0]);
            if at <= self.last {
                // A revision split across responses, or sent twice: a list is exact.
                return Err(Interrupted::Compacted);
            }
            let mut changes = Vec::with_capacity(group.len());
            for event in group {
                let Some(kv) = event.kv() else { continue };
                let Some(key) = kv.key_str().ok().and_then(|key| self.keys.cacher_key(key)) else { continue };
                match event.event_type() {
                    EventType::Put => {
                        if kv.version() == 1 {
                            self.etcd_keys += 1;
                        }
                        // A value that is no object of the resource: the key holds none.
                        changes.push(match self.keys.decode(kv) {
                            Some((key, object)) => Change::put(key, object),
                            None => Change::delete(key),
                        });
                    }
                    EventType::Delete => {
                        self.etcd_keys -= 1;
                        changes.push(Change::delete(key));
                    }
                }
            }
            self.upstream.apply_async(at, changes).await?;
            self.last = at;
        }
        Ok(())
    }

    /// Confirms with etcd that the prefix did not change after `last` and passes etcd's
    /// revision on if so (see the module docs); otherwise its events are on their way,
    /// and the next response tries again.
    async fn confirm_progress(&mut self) -> Result<(), Interrupted> {
        let after = i64::try_from(self.last + 1).unwrap_or(i64::MAX);
        let options = GetOptions::new()
            .with_range(prefix_end(&self.keys.prefix))
            .with_keys_only()
            .with_min_mod_revision(after);
        let response = self.client.get(self.keys.prefix.as_str(), Some(options)).await?;
        let at = response.header().map_or(0, |header| revision(header.revision()));
        if response.kvs().is_empty() && response.count() == self.etcd_keys && at > self.last {
            self.upstream.progress_async(at).await?;
            self.last = at;
        }
        Ok(())
    }
}

/// The revision an event happened at (a delete's `kv` carries the deleting revision).
pub(crate) fn modified_at(event: &Event) -> u64 {
    event.kv().map_or(0, |kv| revision(kv.mod_revision()))
}
