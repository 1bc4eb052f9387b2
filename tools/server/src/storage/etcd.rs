//! etcd as the source of truth, as behind kube-apiserver: every write is one etcd
//! transaction comparing the key's `mod_revision`, every object's `resourceVersion` is its
//! key's `mod_revision`, and a reflector per resource keeps the cacher current (see
//! `reflector.rs`). Any number of servers on one etcd serve the same revisions.
//!
//! A write's transaction has the current value in its `Else` branch, so a lost race
//! costs no extra round trip: the next attempt starts from what etcd returned. A read
//! with no `resourceVersion` is consistent: the server learns etcd's current revision
//! with a quorum read and answers from the cacher once it has caught up.

use super::reflector::{modified_at, Reflector, ReflectorHandle};
use super::{caught_up, Changed, Preconditions, Storage, StorageError, Stored, Target, UpdateFn, CACHE_WAIT};
use crate::object::Object;
use crate::resource::ResourceDef;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, KeyValue, Txn, TxnOp, TxnOpResponse, TxnResponse,
    WatchOptions,
};
use std::sync::Arc;
use watchcache::{Cacher, ListError, Upstream};

/// The most keys one range request returns (kube-apiserver's page for its reflector).
pub(crate) const PAGE: i64 = 10_000;

/// One resource's objects in etcd.
pub(crate) struct EtcdStorage {
    client: Client,
    keys: Keys,
    cacher: Cacher<Object>,
    reflector: ReflectorHandle,
}

/// Where a resource lives in etcd, and how to read what is there.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) def: ResourceDef,
    /// Every object's etcd key starts with this (`/registry/configmaps/`).
    pub(crate) prefix: String,
    /// The resource's encoding up to the `resourceVersion` value.
    pub(crate) head: Bytes,
}

impl std::fmt::Debug for EtcdStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStorage")
            .field("prefix", &self.keys.prefix)
            .field("reflector", &self.reflector)
            .finish()
    }
}

impl Keys {
    fn etcd_key(&self, namespace: &str, name: &str) -> String {
        self.def.etcd_key(&self.prefix, namespace, name)
    }

    /// The cacher's key of an etcd key, if it names an object of the resource.
    pub(crate) fn cacher_key(&self, etcd_key: &str) -> Option<String> {
        self.def.parse_etcd_key(&self.prefix, etcd_key).map(|(namespace, name)| self.def.key(namespace, name))
    }

    /// The cacher's key and the object an etcd key-value holds; `None` for a key that
    /// names no object of the resource, or a value that is not one (logged).
    pub(crate) fn decode(&self, kv: &KeyValue) -> Option<(String, Object)> {
        let key = kv.key_str().ok()?;
        let Some((namespace, name)) = self.def.parse_etcd_key(&self.prefix, key) else {
            tracing::warn!(key, "a key under the resource's prefix names no object; ignored");
            return None;
        };
        let def = &self.def;
        match Object::from_stored(kv.value(), revision(kv.mod_revision()), def, (namespace, name)) {
            Ok(object) => Some((def.key(namespace, name), object)),
            Err(error) => {
                tracing::warn!(key, %error, "a value under the resource's prefix is not an object of it; ignored");
                None
            }
        }
    }
}

/// etcd revisions are positive `i64`s.
pub(crate) fn revision(etcd: i64) -> u64 {
    u64::try_from(etcd).unwrap_or_default()
}

fn etcd_revision(revision: u64) -> i64 {
    i64::try_from(revision).unwrap_or(i64::MAX)
}

/// What an etcd call's failure means to a client.
pub(crate) fn unavailable(error: etcd_client::Error) -> StorageError {
    StorageError::Unavailable(format!("etcd did not answer: {error}"))
}

/// Whether etcd refused a read for a compacted revision.
pub(crate) fn compacted(error: &etcd_client::Error) -> bool {
    matches!(error, etcd_client::Error::GRpcStatus(status) if status.message().contains("compacted"))
}

impl EtcdStorage {
    /// The storage of `def` under `root` on `client`, feeding `cacher` through `upstream`
    /// from a reflector it starts on the current runtime; its lists are counted in
    /// `relists`.
    pub(crate) fn start(
        client: Client,
        (root, def, head): (&str, ResourceDef, Bytes),
        (cacher, upstream): (Cacher<Object>, Upstream<Object>),
        relists: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        let keys = Keys { prefix: def.etcd_prefix(root), def, head };
        let reflector = Reflector::start(client.clone(), keys.clone(), upstream, relists);
        Self { client, keys, cacher, reflector }
    }

    /// The object at `key` in etcd now (a quorum read).
    async fn read(&self, key: &str) -> Result<Option<Arc<Object>>, StorageError> {
        let response = self.client.clone().get(key, None).await.map_err(unavailable)?;
        Ok(response.kvs().first().and_then(|kv| self.keys.decode(kv)).map(|(_, object)| Arc::new(object)))
    }

    /// The object a failed transaction's `Else` branch read.
    fn current_from(&self, response: &TxnResponse) -> Option<Arc<Object>> {
        response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => {
                get.kvs().first().and_then(|kv| self.keys.decode(kv)).map(|(_, object)| Arc::new(object))
            }
            _ => None,
        })
    }

    /// The current object to start a read-modify-write from: the cacher's (etcd decides
    /// whether it is still current), or etcd's if the cacher has none yet.
    async fn current(&self, target: &Target<'_>, etcd_key: &str) -> Result<Current, StorageError> {
        let cached = self
            .cacher
            .get(&self.keys.def.key(target.namespace, target.name))
            .ok()
            .and_then(|(object, _)| object);
        match cached {
            Some(object) => Ok(Current { object: Some(object), from_etcd: false }),
            None => Ok(Current { object: self.read(etcd_key).await?, from_etcd: true }),
        }
    }

    /// Writes `op` if `key`'s `mod_revision` is still `expected` (0: absent); the current
    /// value otherwise, in the same round trip.
    async fn swap(&self, key: &str, expected: u64, op: TxnOp) -> Result<TxnResponse, StorageError> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, etcd_revision(expected))])
            .and_then([op])
            .or_else([TxnOp::get(key, None)]);
        self.client.clone().txn(txn).await.map_err(unavailable)
    }
}

/// The object a read-modify-write starts from, and whether etcd said so: the cacher's
/// may lag behind a write the client has already been answered for, so a precondition
/// it fails is checked again against etcd before the write is refused (as Kubernetes'
/// `GuaranteedUpdate` does).
struct Current {
    object: Option<Arc<Object>>,
    from_etcd: bool,
}

fn written(response: &TxnResponse, mut object: Object) -> Stored {
    let revision = response.header().map_or(0, |header| revision(header.revision()));
    object.set_revision(revision);
    Stored { object: Arc::new(object), revision }
}

#[async_trait::async_trait]
impl Storage for EtcdStorage {
    async fn create(&self, target: Target<'_>, object: Object) -> Result<Stored, StorageError> {
        let key = self.keys.etcd_key(target.namespace, target.name);
        let put = TxnOp::put(key.as_str(), object.to_stored(&self.keys.head), None);
        let response = self.swap(&key, 0, put).await?;
        if !response.succeeded() {
            return Err(StorageError::already_exists(&target));
        }
        Ok(written(&response, object))
    }

    async fn update(
        &self,
        target: Target<'_>,
        precondition: Option<u64>,
        next: &UpdateFn<'_>,
    ) -> Result<Stored, StorageError> {
        let key = self.keys.etcd_key(target.namespace, target.name);
        let mut current = self.current(&target, &key).await?;
        // Kubernetes' GuaranteedUpdate: retried for as long as other writes win the race.
        loop {
            let Some(object) = current.object else { return Err(StorageError::not_found(&target)) };
            if precondition.is_some_and(|revision| object.revision() != revision) {
                if current.from_etcd {
                    return Err(StorageError::conflict(&target));
                }
                current = Current { object: self.read(&key).await?, from_etcd: true };
                continue;
            }
            let replacement = next(&object).map_err(StorageError::Refused)?;
            let put = TxnOp::put(key.as_str(), replacement.to_stored(&self.keys.head), None);
            let response = self.swap(&key, object.revision(), put).await?;
            if response.succeeded() {
                return Ok(written(&response, replacement));
            }
            current = Current { object: self.current_from(&response), from_etcd: true };
        }
    }

    async fn delete(
        &self,
        target: Target<'_>,
        preconditions: &Preconditions,
    ) -> Result<Stored, StorageError> {
        let key = self.keys.etcd_key(target.namespace, target.name);
        let mut current = self.current(&target, &key).await?;
        loop {
            let Some(object) = current.object else { return Err(StorageError::not_found(&target)) };
            if !preconditions.hold_for(&object) {
                if current.from_etcd {
                    return Err(StorageError::conflict(&target));
                }
                current = Current { object: self.read(&key).await?, from_etcd: true };
                continue;
            }
            let response = self.swap(&key, object.revision(), TxnOp::delete(key.as_str(), None)).await?;
            if response.succeeded() {
                let revision = response.header().map_or(0, |header| revision(header.revision()));
                return Ok(Stored { object, revision });
            }
            current = Current { object: self.current_from(&response), from_etcd: true };
        }
    }

    async fn sync(&self) -> Result<u64, StorageError> {
        // A quorum read of a key that holds nothing: O(log n) for etcd, and its header
        // carries the revision every acknowledged write is at or below.
        let response = self.client.clone().get(self.keys.prefix.as_str(), None).await.map_err(unavailable)?;
        let current = response.header().map_or(0, |header| revision(header.revision()));
        if self.cacher.revision() >= current {
            return Ok(current);
        }
        self.reflector.want(current);
        match tokio::time::timeout(CACHE_WAIT, caught_up(&self.cacher, current)).await {
            Ok(Ok(())) => Ok(current),
            Ok(Err(ListError::TooNew { current: cached, .. })) => {
                Err(StorageError::TooNew { requested: current, current: cached })
            }
            Ok(Err(error)) => Err(StorageError::Unavailable(error.to_string())),
            Err(_) => Err(StorageError::TooNew { requested: current, current: self.cacher.revision() }),
        }
    }

    async fn state_at(&self, at: u64) -> Result<Vec<Object>, StorageError> {
        let compacted_at = |error: &etcd_client::Error| {
            compacted(error)
                .then(|| StorageError::Compacted { requested: at, oldest: self.cacher.stats().window_oldest })
        };
        let mut objects = Vec::new();
        let mut from = self.keys.prefix.clone().into_bytes();
        let end = prefix_end(&self.keys.prefix);
        loop {
            let options =
                GetOptions::new().with_range(end.clone()).with_revision(etcd_revision(at)).with_limit(PAGE);
            let response = match self.client.clone().get(from.clone(), Some(options)).await {
                Ok(response) => response,
                Err(error) => return Err(compacted_at(&error).unwrap_or_else(|| unavailable(error))),
            };
            objects.extend(
                response.kvs().iter().filter_map(|kv| self.keys.decode(kv)).map(|(_, object)| object),
            );
            match response.kvs().last() {
                Some(last) if response.more() => from = [last.key(), b"\0"].concat(),
                _ => return Ok(objects),
            }
        }
    }

    async fn changes(&self, after: u64, through: u64) -> Result<Vec<Changed>, StorageError> {
        let failed = |error: etcd_client::Error| {
            if compacted(&error) {
                StorageError::Compacted { requested: after, oldest: self.cacher.stats().window_oldest }
            } else {
                unavailable(error)
            }
        };
        let (prefix, end) = (self.keys.prefix.as_str(), prefix_end(&self.keys.prefix));
        let mut client = self.client.clone();
        // The keys under the prefix (objects or not) at `after`, then after each change.
        let count =
            GetOptions::new().with_range(end.clone()).with_revision(etcd_revision(after)).with_count_only();
        let mut keys = client.get(prefix, Some(count)).await.map_err(failed)?.count();
        let watch = WatchOptions::new()
            .with_range(end.clone())
            .with_start_revision(etcd_revision(after.saturating_add(1)))
            .with_prev_key();
        let mut stream = client.watch(prefix, Some(watch)).await.map_err(failed)?;
        let mut changes = Vec::new();
        let mut reached = after;
        loop {
            // The history is complete once etcd confirms that nothing under the prefix
            // changed after the last change seen, through `through`: no key modified
            // since, and as many keys (nothing deleted). A history with nothing more
            // sends nothing more, so this, not the watch, says when to stop.
            if reached >= through {
                return Ok(changes);
            }
            let modified = GetOptions::new()
                .with_range(end.clone())
                .with_revision(etcd_revision(through))
                .with_keys_only()
                .with_min_mod_revision(etcd_revision(reached + 1));
            let since = client.get(prefix, Some(modified)).await.map_err(failed)?;
            if since.kvs().is_empty() && since.count() == keys {
                return Ok(changes);
            }
            let response = match stream.message().await.map_err(failed)? {
                Some(response) if response.canceled() && response.compact_revision() != 0 => {
                    return Err(StorageError::Compacted {
                        requested: after,
                        oldest: revision(response.compact_revision()),
                    });
                }
                Some(response) if !response.canceled() => response,
                _ => return Err(StorageError::Unavailable("etcd ended the watch of its history".into())),
            };
            for event in response.events() {
                let at = modified_at(event);
                if at > through {
                    return Ok(changes);
                }
                let Some(kv) = event.kv() else { continue };
                let now = match event.event_type() {
                    EventType::Put => {
                        keys += i64::from(kv.version() == 1);
                        self.keys.decode(kv)
                    }
                    EventType::Delete => {
                        keys -= 1;
                        None
                    }
                };
                let before = event.prev_kv().and_then(|kv| self.keys.decode(kv));
                changes.push(Changed { revision: at, before, after: now });
                reached = at;
            }
        }
    }

    fn shutdown(&self) {
        self.reflector.stop();
    }
}

/// The end of the key range of everything under `prefix`.
pub(crate) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    // Keys under a prefix ending in '/' end before the prefix with its last byte raised.
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}
