//! The served resources: each one's cacher and the delegator that routes its reads and
//! writes, built for the storage the server runs on.

use crate::metrics::{Metrics, ResourceMetrics};
use crate::negotiation::Answer;
use crate::object::Object;
use crate::resource::ResourceDef;
use crate::status::ApiError;
use crate::storage::etcd::EtcdStorage;
use crate::storage::memory::MemoryStorage;
use crate::storage::{Delegator, Storage};
use crate::Settings;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::sync::Arc;
use watchcache::Cacher;

/// Where the served resources' objects are written.
pub(crate) enum Backing<'a> {
    Memory,
    Etcd { client: &'a etcd_client::Client, prefix: &'a str },
}

/// One served resource: its definition, its delegator and what requests need of it.
pub(crate) struct Served {
    pub(crate) def: ResourceDef,
    pub(crate) delegator: Delegator,
    /// Every object's encoding up to its `resourceVersion` value.
    pub(crate) head: Bytes,
    pub(crate) api_version: String,
    /// The resource as messages name it (`configmaps`, `widgets.example.com`).
    pub(crate) group_resource: String,
    pub(crate) metrics: ResourceMetrics,
    /// The kind's protobuf; `None` for a custom resource.
    #[cfg(feature = "protobuf")]
    pub(crate) protobuf: Option<crate::protobuf::Codec>,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served").field("def", &self.def).field("delegator", &self.delegator).finish()
    }
}

impl Served {
    fn new(def: ResourceDef, settings: &Settings, metrics: &Metrics, backing: &Backing<'_>) -> Self {
        let mut builder = Cacher::builder().slow_watcher_policy(settings.slow_watcher_policy);
        if let Some(window) = settings.window {
            builder = builder.window_capacity(window);
        }
        if settings.window_bytes > 0 {
            builder = builder.window_bytes(settings.window_bytes, Object::weight);
        }
        if let Some(buffer) = settings.watcher_buffer {
            builder = builder.watcher_buffer(buffer);
        }
        if def.node_name {
            // Unscheduled pods are under "" (`spec.nodeName=` selects them), as in Kubernetes.
            builder = builder.trigger(|pod: &Object| Some(pod.node_name().unwrap_or("")));
        }
        let api_version = def.api_version();
        let head = Bytes::from(
            format!(
                r#"{{"apiVersion":"{api_version}","kind":"{}","metadata":{{"resourceVersion":""#,
                def.kind
            )
            .into_bytes(),
        );
        let (cacher, storage, metrics): (Cacher<Object>, Box<dyn Storage>, ResourceMetrics) = match backing {
            Backing::Memory => {
                let cacher = builder.stamp_revision(Object::set_revision).build();
                let metrics = metrics.register_resource(&def.plural, &cacher);
                (cacher.clone(), Box::new(MemoryStorage::new(cacher, def.clone())), metrics)
            }
            Backing::Etcd { client, prefix } => {
                // Objects read from etcd carry their `mod_revision` already.
                let (cacher, upstream) = builder.upstream();
                let metrics = metrics.register_resource(&def.plural, &cacher);
                let storage = EtcdStorage::start(
                    (*client).clone(),
                    (prefix, def.clone(), head.clone()),
                    (cacher.clone(), upstream),
                    metrics.relists.clone(),
                );
                (cacher, Box::new(storage), metrics)
            }
        };
        Self {
            delegator: Delegator::new(def.clone(), cacher, storage),
            head,
            api_version,
            group_resource: def.group_resource(),
            metrics,
            #[cfg(feature = "protobuf")]
            protobuf: crate::protobuf::Codec::new(&def),
            def,
        }
    }

    /// The answer `headers` ask for, among the forms this resource is served in.
    pub(crate) fn answer(&self, headers: &HeaderMap) -> Result<Answer, ApiError> {
        #[cfg(feature = "protobuf")]
        let protobuf = self.protobuf.is_some();
        #[cfg(not(feature = "protobuf"))]
        let protobuf = false;
        Answer::of(headers, protobuf)
    }

    /// The protobuf codec `answer` writes with, if it is protobuf (which
    /// [`Self::answer`] chooses only for a kind that has one).
    #[cfg(feature = "protobuf")]
    pub(crate) fn codec(&self, answer: Answer) -> Option<&crate::protobuf::Codec> {
        self.protobuf.as_ref().filter(|_| answer == Answer::Protobuf)
    }

    /// `object`'s protobuf encoding, made the first time one is asked for.
    #[cfg(feature = "protobuf")]
    pub(crate) fn encoded<'a>(
        &self,
        codec: &crate::protobuf::Codec,
        object: &'a Object,
    ) -> Result<&'a crate::protobuf::Encoded, ApiError> {
        object.protobuf((codec, &self.head), &self.metrics.protobuf_encodes)
    }

    /// `object` as a response body in the form of `answer`, at `revision`.
    pub(crate) fn object_response(
        &self,
        answer: Answer,
        code: StatusCode,
        object: &Object,
        revision: u64,
    ) -> Result<Response, ApiError> {
        let mut out = BytesMut::with_capacity(512);
        #[cfg(feature = "protobuf")]
        if let Some(codec) = self.codec(answer) {
            codec.object(&mut out, self.encoded(codec, object)?, revision);
            return Ok(crate::list::protobuf_response(code, out.freeze()));
        }
        #[cfg(not(feature = "protobuf"))]
        let _ = answer;
        object.write_json(&mut out, &self.head, revision);
        Ok(crate::list::json_response(code, out.freeze()))
    }
}

/// Every served resource, by group, version and plural.
#[derive(Debug)]
pub(crate) struct Registry {
    by_path: HashMap<(String, String, String), Arc<Served>>,
    /// In the order given, for discovery.
    pub(crate) all: Vec<Arc<Served>>,
}

impl Registry {
    /// The resources of `settings`, each on `backing`; `Err` names a resource given twice.
    pub(crate) fn new(settings: &Settings, metrics: &Metrics, backing: &Backing<'_>) -> Result<Self, String> {
        let mut registry = Self { by_path: HashMap::new(), all: Vec::new() };
        for def in &settings.resources {
            let path = (def.group.clone(), def.version.clone(), def.plural.clone());
            if registry.by_path.contains_key(&path) {
                return Err(def.plural.clone());
            }
            let served = Arc::new(Served::new(def.clone(), settings, metrics, backing));
            registry.by_path.insert(path, served.clone());
            registry.all.push(served);
        }
        Ok(registry)
    }

    pub(crate) fn find(&self, group: &str, version: &str, plural: &str) -> Result<&Arc<Served>, ApiError> {
        self.by_path.get(&(group.to_owned(), version.to_owned(), plural.to_owned())).ok_or_else(|| {
            let path = if group.is_empty() {
                format!("/api/{version}/{plural}")
            } else {
                format!("/apis/{group}/{version}/{plural}")
            };
            ApiError::no_such_path(&path)
        })
    }

    /// The groups other than core, each with its versions, in order of first mention.
    pub(crate) fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for served in &self.all {
            let def = &served.def;
            if def.group.is_empty() {
                continue;
            }
            match groups.iter_mut().find(|(group, _)| *group == def.group) {
                Some((_, versions)) if !versions.contains(&def.version) => versions.push(def.version.clone()),
                Some(_) => {}
                None => groups.push((def.group.clone(), vec![def.version.clone()])),
            }
        }
        groups
    }

    /// The `namespaces` resource, if served.
    pub(crate) fn namespaces(&self) -> Option<&Arc<Served>> {
        self.by_path.get(&(String::new(), "v1".to_owned(), "namespaces".to_owned()))
    }

    pub(crate) fn shutdown(&self) {
        for served in &self.all {
            served.delegator.shutdown();
        }
    }
}
