//! The served resources: what each is called on the wire, and the cacher that holds it.

use crate::metrics::{Metrics, ResourceMetrics};
use crate::object::Object;
use crate::status::ApiError;
use crate::Settings;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use watchcache::{Cacher, Producer};

/// A resource type as Kubernetes names it. All are namespaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceDef {
    /// The API group; empty for the core group (`/api/v1`).
    pub group: String,
    /// The version, e.g. `v1`.
    pub version: String,
    /// The plural name in paths, e.g. `configmaps`.
    pub plural: String,
    /// The kind, e.g. `ConfigMap`.
    pub kind: String,
    /// Short names kubectl accepts, e.g. `cm`.
    pub short_names: Vec<String>,
    /// Whether objects have `spec.nodeName`, indexed and selectable (pods).
    pub node_name: bool,
}

impl ResourceDef {
    /// Core `v1` `configmaps`.
    pub fn config_maps() -> Self {
        Self::core("configmaps", "ConfigMap", &["cm"], false)
    }

    /// Core `v1` `pods`, indexed by `spec.nodeName` as Kubernetes indexes them.
    pub fn pods() -> Self {
        Self::core("pods", "Pod", &["po"], true)
    }

    fn core(plural: &str, kind: &str, short_names: &[&str], node_name: bool) -> Self {
        Self {
            group: String::new(),
            version: "v1".into(),
            plural: plural.into(),
            kind: kind.into(),
            short_names: short_names.iter().map(|name| name.to_string()).collect(),
            node_name,
        }
    }

    /// Parses `GROUP/VERSION/PLURAL/Kind`, e.g. `example.com/v1/widgets/Widget`: a
    /// custom resource, served schemaless.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let [group, version, plural, kind] = parts[..] else {
            return Err(format!("resource {text:?} is not GROUP/VERSION/PLURAL/Kind"));
        };
        let lower = |part: &str| {
            !part.is_empty()
                && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        };
        if !lower(group)
            || !lower(version)
            || !lower(plural)
            || !kind.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(format!(
                "resource {text:?}: group, version and plural are lowercase; kind is alphanumeric"
            ));
        }
        if !kind.starts_with(|c: char| c.is_ascii_uppercase()) {
            return Err(format!("resource {text:?}: kind starts with an uppercase letter"));
        }
        Ok(Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            kind: kind.into(),
            short_names: Vec::new(),
            node_name: false,
        })
    }

    /// `v1` or `group/version`, as in `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// One served resource: its definition, its cacher and what requests need of it.
pub(crate) struct Served {
    pub(crate) def: ResourceDef,
    pub(crate) cacher: Cacher<Object>,
    pub(crate) producer: Producer<Object>,
    /// Every object's encoding up to its `resourceVersion` value.
    pub(crate) head: Bytes,
    pub(crate) api_version: String,
    pub(crate) metrics: ResourceMetrics,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served").field("def", &self.def).field("revision", &self.cacher.revision()).finish()
    }
}

impl Served {
    fn new(def: ResourceDef, settings: &Settings, metrics: &Metrics) -> Self {
        let mut builder = Cacher::builder()
            .stamp_revision(Object::set_revision)
            .slow_watcher_policy(settings.slow_watcher_policy);
        if let Some(window) = settings.window {
            builder = builder.window_capacity(window);
        }
        if let Some(buffer) = settings.watcher_buffer {
            builder = builder.watcher_buffer(buffer);
        }
        if def.node_name {
            // Unscheduled pods are under "" (`spec.nodeName=` selects them), as in Kubernetes.
            builder = builder.trigger(|pod: &Object| Some(pod.node_name().unwrap_or("")));
        }
        let cacher = builder.build();
        let metrics = metrics.register_resource(&def.plural, &cacher);
        let api_version = def.api_version();
        let head = Bytes::from(
            format!(
                r#"{{"apiVersion":"{api_version}","kind":"{}","metadata":{{"resourceVersion":""#,
                def.kind
            )
            .into_bytes(),
        );
        Self { producer: cacher.producer(), cacher, head, api_version, metrics, def }
    }

    /// The key of `name` in `namespace`.
    pub(crate) fn key(&self, namespace: &str, name: &str) -> String {
        format!("{}/{namespace}/{name}", self.def.plural)
    }

    /// The key prefix of a namespace, or of every namespace.
    pub(crate) fn prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(namespace) => format!("{}/{namespace}/", self.def.plural),
            None => format!("{}/", self.def.plural),
        }
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
    pub(crate) fn new(settings: &Settings, metrics: &Metrics) -> Result<Self, String> {
        let mut registry = Self { by_path: HashMap::new(), all: Vec::new() };
        for def in &settings.resources {
            let path = (def.group.clone(), def.version.clone(), def.plural.clone());
            if registry.by_path.contains_key(&path) {
                return Err(format!("resource {} is named twice", def.plural));
            }
            let served = Arc::new(Served::new(def.clone(), settings, metrics));
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

    pub(crate) fn shutdown(&self) {
        for served in &self.all {
            served.cacher.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_resources_parse_from_the_command_line_form() {
        let def = ResourceDef::parse("example.com/v1/widgets/Widget").unwrap();
        assert_eq!(def.api_version(), "example.com/v1");
        assert_eq!(def.kind, "Widget");
        for bad in ["widgets", "example.com/v1/widgets/widget", "Example.com/v1/widgets/Widget", "a/b/c/D/e"]
        {
            assert!(ResourceDef::parse(bad).is_err(), "{bad}");
        }
    }
}
