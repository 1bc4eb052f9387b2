//! The served resources' definitions: what each is called on the wire, and where its
//! objects live — the cacher's keys, and etcd's, laid out as kube-apiserver lays them.

use crate::builtin::BuiltIn;

/// A resource type as Kubernetes names it: namespaced (objects live in a namespace) or
/// cluster-scoped (as namespaces themselves).
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
    /// The Kubernetes kind whose type bodies must decode as; `None` for a custom
    /// resource, served schemaless.
    pub builtin: Option<BuiltIn>,
    /// Whether objects live in namespaces (`/namespaces/{ns}/{plural}/{name}`), rather
    /// than in the cluster (`/{plural}/{name}`).
    pub namespaced: bool,
}

impl ResourceDef {
    /// Core `v1` `configmaps`.
    pub fn config_maps() -> Self {
        Self::core(BuiltIn::ConfigMap, ("configmaps", "ConfigMap", &["cm"]), false)
    }

    /// Core `v1` `pods`, indexed by `spec.nodeName` as Kubernetes indexes them.
    pub fn pods() -> Self {
        Self::core(BuiltIn::Pod, ("pods", "Pod", &["po"]), true)
    }

    /// Core `v1` `secrets`.
    pub fn secrets() -> Self {
        Self::core(BuiltIn::Secret, ("secrets", "Secret", &[]), false)
    }

    /// Core `v1` `events` (what `kubectl describe` shows of an object).
    pub fn events() -> Self {
        Self::core(BuiltIn::Event, ("events", "Event", &["ev"]), false)
    }

    /// Core `v1` `namespaces`, cluster-scoped: an object of a namespaced resource is
    /// created only in a namespace that exists.
    pub fn namespaces() -> Self {
        Self {
            namespaced: false,
            ..Self::core(BuiltIn::Namespace, ("namespaces", "Namespace", &["ns"]), false)
        }
    }

    fn core(builtin: BuiltIn, (plural, kind, short_names): (&str, &str, &[&str]), node_name: bool) -> Self {
        Self {
            builtin: Some(builtin),
            namespaced: true,
            group: String::new(),
            version: "v1".into(),
            plural: plural.into(),
            kind: kind.into(),
            short_names: short_names.iter().map(|name| name.to_string()).collect(),
            node_name,
        }
    }

    /// Parses `GROUP/VERSION/PLURAL/Kind[/SCOPE]`, e.g. `example.com/v1/widgets/Widget`
    /// or `example.com/v1/clusterwidgets/ClusterWidget/Cluster`: a custom resource,
    /// served schemaless, `Namespaced` (the default) or `Cluster`-scoped as a
    /// CustomResourceDefinition's `scope` says.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let (group, version, plural, kind, namespaced) = match parts[..] {
            [group, version, plural, kind] => (group, version, plural, kind, true),
            [group, version, plural, kind, "Namespaced"] => (group, version, plural, kind, true),
            [group, version, plural, kind, "Cluster"] => (group, version, plural, kind, false),
            _ => {
                return Err(format!(
                    "resource {text:?} is not GROUP/VERSION/PLURAL/Kind[/Namespaced|/Cluster]"
                ))
            }
        };
        let lower = |part: &str| {
            !part.is_empty()
                && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        };
        if !lower(group)
            || !lower(version)
            || !lower(plural)
            || plural.contains('.')
            || !kind.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(format!(
                "resource {text:?}: group, version and plural are lowercase, the plural without dots; \
                 kind is alphanumeric"
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
            builtin: None,
            namespaced,
        })
    }

    /// The fields a `fieldSelector` may name besides `metadata.name`,
    /// `metadata.namespace` and `spec.nodeName` (see [`BuiltIn`]'s); none for a custom
    /// resource.
    pub(crate) fn selectable_fields(&self) -> &'static [(&'static str, &'static str)] {
        self.builtin.map_or(&[], BuiltIn::selectable_fields)
    }

    /// Whether a delete answers with the deleted object (pods and namespaces, as
    /// Kubernetes' registry has it), rather than a `Status` `Success`.
    pub(crate) fn delete_answers_the_object(&self) -> bool {
        matches!(self.builtin, Some(BuiltIn::Pod | BuiltIn::Namespace))
    }

    /// The resource as Kubernetes names it in messages: `configmaps` in the core group,
    /// `widgets.example.com` in others.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `v1` or `group/version`, as in `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The cacher's key of `name` in `namespace`: `{plural}/{namespace}/{name}`, or
    /// `{plural}/{name}` for a cluster-scoped resource (whose namespace is empty).
    pub(crate) fn key(&self, namespace: &str, name: &str) -> String {
        if self.namespaced {
            format!("{}/{namespace}/{name}", self.plural)
        } else {
            format!("{}/{name}", self.plural)
        }
    }

    /// The cacher's key prefix of a namespace, or of every namespace (or the cluster).
    pub(crate) fn prefix(&self, namespace: Option<&str>) -> String {
        match namespace.filter(|_| self.namespaced) {
            Some(namespace) => format!("{}/{namespace}/", self.plural),
            None => format!("{}/", self.plural),
        }
    }

    /// The etcd key prefix of every object, under `root` (e.g. `/registry`):
    /// `{root}/{plural}/` for the core group, `{root}/{group}/{plural}/` for others, as
    /// kube-apiserver lays them out.
    pub(crate) fn etcd_prefix(&self, root: &str) -> String {
        let root = root.trim_end_matches('/');
        if self.group.is_empty() {
            format!("{root}/{}/", self.plural)
        } else {
            format!("{root}/{}/{}/", self.group, self.plural)
        }
    }

    /// The namespace and name an etcd key under `etcd_prefix` names, if it names one
    /// (`{namespace}/{name}`, or `{name}` for a cluster-scoped resource, whose namespace
    /// is empty).
    pub(crate) fn parse_etcd_key<'k>(&self, etcd_prefix: &str, key: &'k str) -> Option<(&'k str, &'k str)> {
        let rest = key.strip_prefix(etcd_prefix)?;
        let (namespace, name) = if self.namespaced { rest.split_once('/')? } else { ("", rest) };
        (self.namespaced != namespace.is_empty() && !name.is_empty() && !name.contains('/'))
            .then_some((namespace, name))
    }

    /// The etcd key of `name` in `namespace` under `etcd_prefix`, laid out as
    /// [`Self::parse_etcd_key`] reads it.
    pub(crate) fn etcd_key(&self, etcd_prefix: &str, namespace: &str, name: &str) -> String {
        if self.namespaced {
            format!("{etcd_prefix}{namespace}/{name}")
        } else {
            format!("{etcd_prefix}{name}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ResourceDef;

    #[test]
    fn keys_are_laid_out_as_kube_apiserver_lays_them() {
        let maps = ResourceDef::config_maps();
        assert_eq!(maps.etcd_prefix("/registry"), "/registry/configmaps/");
        let widgets = ResourceDef::parse("example.com/v1/widgets/Widget").unwrap();
        assert_eq!(widgets.etcd_prefix("/registry/"), "/registry/example.com/widgets/");
        let prefix = maps.etcd_prefix("/registry");
        assert_eq!(maps.parse_etcd_key(&prefix, "/registry/configmaps/default/a"), Some(("default", "a")));
        for stray in
            ["/registry/configmaps/default", "/registry/configmaps/a/b/c", "/registry/pods/default/a"]
        {
            assert_eq!(maps.parse_etcd_key(&prefix, stray), None, "{stray}");
        }
        let namespaces = ResourceDef::namespaces();
        let prefix = namespaces.etcd_prefix("/registry");
        assert_eq!(namespaces.etcd_key(&prefix, "", "kube-system"), "/registry/namespaces/kube-system");
        assert_eq!(
            namespaces.parse_etcd_key(&prefix, "/registry/namespaces/kube-system"),
            Some(("", "kube-system"))
        );
        assert_eq!(namespaces.parse_etcd_key(&prefix, "/registry/namespaces/a/b"), None);
        assert_eq!(
            (namespaces.key("", "a"), namespaces.prefix(Some("x"))),
            ("namespaces/a".into(), "namespaces/".into())
        );
    }

    #[test]
    fn custom_resources_parse_from_the_command_line_form() {
        let def = ResourceDef::parse("example.com/v1/widgets/Widget").unwrap();
        assert_eq!(def.api_version(), "example.com/v1");
        assert_eq!(def.kind, "Widget");
        assert_eq!(def.group_resource(), "widgets.example.com");
        assert!(def.namespaced);
        let cluster = ResourceDef::parse("example.com/v1/clusterwidgets/ClusterWidget/Cluster").unwrap();
        assert!(!cluster.namespaced);
        assert_eq!(ResourceDef::config_maps().group_resource(), "configmaps");
        for bad in [
            "widgets",
            "example.com/v1/widgets/widget",
            "example.com/v1/wid.gets/Widget",
            "example.com/v1/widgets/Widget/Global",
            "Example.com/v1/widgets/Widget",
            "a/b/c/D/e",
        ] {
            assert!(ResourceDef::parse(bad).is_err(), "{bad}");
        }
    }
}
