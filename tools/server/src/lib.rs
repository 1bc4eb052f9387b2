//! `watchcache-server`: the Kubernetes list/watch protocol over watchcache cachers, so
//! that the clients this field already uses — `kubectl`, kube-rs, client-go — read from
//! and write to it unchanged.
//!
//! Each served resource (core `v1` `configmaps`, `pods`, `secrets`, `events` and the
//! cluster-scoped `namespaces`, and any custom resource named in [`Settings::resources`])
//! is one [`watchcache::Cacher`] of Kubernetes-shaped JSON objects keyed
//! `{resource}/{namespace}/{name}` (`{resource}/{name}` when cluster-scoped), in front of
//! a storage ([`Settings::storage`]): the server's own memory (the default; the data lives as long
//! as the process), or etcd, shared by any number of servers, with each object's
//! `resourceVersion` its key's `mod_revision`. Writes go to the storage, reads and
//! watches come from the cacher, which a reflector keeps equal to etcd; a compaction past
//! the reflector's watch relists without closing a client's watch. The server answers:
//!
//! - **list** `GET /api/v1/namespaces/{ns}/{resource}` (or `/api/v1/{resource}` for every
//!   namespace, or `/apis/{group}/{version}/…`) with `labelSelector`, `fieldSelector`
//!   (`metadata.name`, `metadata.namespace`, `spec.nodeName` of pods, served by the
//!   cacher's trigger index, and each built-in kind's selectable fields, as an event's
//!   `involvedObject.name`), `resourceVersion` with `resourceVersionMatch`
//!   (`NotOlderThan`, or `Exact` within the window, else 410), and `limit` + `continue`
//!   (every page at the first page's revision);
//! - **watch**, the same paths with `watch=true`: `resourceVersion` absent or `0` starts
//!   with the current state as `ADDED` events, a revision resumes after it;
//!   `allowWatchBookmarks`, `sendInitialEvents=true` (ending the initial events with a
//!   bookmark annotated `k8s.io/initial-events-end: "true"`), `timeoutSeconds`. One JSON
//!   event per line. A watch from a revision older than the window, or one ended for
//!   being too slow, ends with an `ERROR` event carrying a 410 `Expired` status, so
//!   clients relist as they do against Kubernetes;
//! - **get, create, replace, patch, delete** of one object: a replace that names a
//!   `metadata.resourceVersion` is a compare-and-swap decided in order by the cacher
//!   (409 `Conflict` when stale); creating an existing name is 409 `AlreadyExists`;
//!   patches are JSON patches (RFC 6902), merge patches, or for built-in kinds strategic
//!   merge patches (lists merged by the kind's merge keys, `$patch` and the other
//!   directives read); a delete answers a `Status` `Success` (a
//!   pod's, the pod at the deleting revision);
//! - **OpenAPI v3** (`/openapi/v3` and a document per group-version), from which kubectl
//!   learns to send `fieldValidation` (`Strict`: a field the kind lacks is 400; `Warn`, the
//!   default, a `Warning` header; `Ignore`) and `kubectl explain` reads the schemas; and
//!   **OpenAPI v2** (`/openapi/v2`: every served kind's definitions, in JSON, and with the
//!   `protobuf` feature in the protobuf form kubectl before 1.27 validates and explains by);
//! - **discovery** (`/api`, `/api/v1`, `/apis`, `/apis/{group}/{version}`, `/version`),
//!   `/healthz`, `/readyz` and `/metrics` (Prometheus text).
//!
//! Bodies of the built-in kinds decode as Kubernetes' own types (400 when they do not);
//! with the `protobuf` feature they may also come in Kubernetes' protobuf envelope, as
//! current kubectl and client-go components send them (read by Kubernetes' `.proto`
//! definitions, which the build compiles from `KUBERNETES_PROTO_ROOT`);
//! names and labels are validated as Kubernetes validates them (422 `Invalid`, a cause
//! per field). Answers are JSON, or for lists, gets and watches the `Table` `kubectl get`
//! asks for (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), or with the
//! `protobuf` feature, for the built-in kinds, protobuf (watches as length-prefixed
//! `WatchEvent` frames), in the first form the client's `Accept` names that the resource
//! is served in; an `Accept` that allows none is 406. Every error is a Kubernetes
//! `Status` object (JSON, but in a protobuf watch's `ERROR` event).
//!
//! Namespaces behave as in Kubernetes: `default`, `kube-system`, `kube-public` and
//! `kube-node-lease` exist from the start, an object is created only in a namespace that
//! exists (404 otherwise), and deleting a namespace deletes what it holds. Each object is
//! encoded to JSON once, when written (to protobuf once, when a protobuf client first
//! reads it); lists and every watcher an event reaches copy those bytes (the
//! `watchcache_encodes_total`, `watchcache_protobuf_encodes_total` and
//! `watchcache_deliveries_total` metrics show the ratio).
//!
//! Limits keep one client from taking the server down: concurrent watches
//! ([`Settings::max_watches`], then 429), request body size ([`Settings::max_body_bytes`],
//! then 413), and a write timeout per connection ([`Settings::write_timeout`]: a client
//! that stops reading is disconnected; the cacher never waits for it). [`Server::serve`]
//! shuts down gracefully: open watches end cleanly, then connections close.
//!
//! ```no_run
//! use watchcache_server::{Server, Settings};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::new(Settings::default()).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! server.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(())
//! # }
//! ```

mod auth;
mod builtin;
mod discovery;
mod limits;
mod list;
mod metrics;
mod namespaces;
mod negotiation;
mod object;
mod openapi;
#[cfg(feature = "protobuf")]
mod protobuf;
mod query;
mod registry;
mod resource;
mod routes;
mod selector;
mod serve;
mod state;
mod status;
mod storage;
mod strategic;
mod table;
mod validation;
mod watch;
mod write;

pub use auth::{TokenFileError, Tokens, User};
pub use builtin::BuiltIn;
pub use object::Object;
pub use resource::ResourceDef;
pub use selector::{FieldSelector, LabelSelector};
pub use serve::{Server, ServerError};
pub use status::ApiError;

use std::time::Duration;
use watchcache::SlowWatcherPolicy;

/// Where the objects live.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageSettings {
    /// In the server's own memory (the default): no other process, and the data lives
    /// only as long as the process.
    #[default]
    Memory,
    /// In etcd, shared by every server on it and durable.
    Etcd {
        /// The etcd members' client URLs (kube-apiserver's `--etcd-servers`).
        servers: Vec<String>,
        /// The key prefix every object lives under (kube-apiserver's `--etcd-prefix`).
        prefix: String,
    },
}

/// How the server is set up. `Default` serves `configmaps` and `pods` from memory with
/// the cacher's own defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The resources served, each with its own cacher.
    pub resources: Vec<ResourceDef>,
    /// Where the objects live.
    pub storage: StorageSettings,
    /// Events each cacher keeps for resuming watches and exact lists; `None` for the
    /// cacher's default (growing from 100 to 102,400 while under 75 s of history).
    pub window: Option<usize>,
    /// The most bytes of objects each cacher's window keeps (see
    /// `CacherBuilder::window_bytes`): a bound on replay memory however large the objects.
    /// `0`: no bound, as in Kubernetes. An object weighs its JSON encoding and the fields
    /// kept beside it; one a protobuf client has read also holds its protobuf encoding
    /// (about as large), which the bound does not count: an object's weight is fixed when
    /// the window takes it.
    pub window_bytes: usize,
    /// Each watch's buffer; `None` for the cacher's defaults.
    pub watcher_buffer: Option<usize>,
    /// What happens to a watch that does not keep up.
    pub slow_watcher_policy: SlowWatcherPolicy,
    /// The most watches open at once; more get 429 with `Retry-After`. `0`: no limit.
    pub max_watches: usize,
    /// The largest request body accepted; larger gets 413.
    pub max_body_bytes: usize,
    /// How long a write to a client may stay blocked before the connection is dropped.
    pub write_timeout: Duration,
    /// The longest a graceful shutdown waits for connections to finish.
    pub shutdown_grace: Duration,
    /// TLS: the certificate chain and private key (PEM files); `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
    /// kube-apiserver's `--token-auth-file` (`token,user,uid,"groups"`): every request
    /// must carry one of its bearer tokens. `None`: no authentication.
    pub token_auth_file: Option<std::path::PathBuf>,
    /// Allows listening beyond loopback without TLS and tokens (logged as a warning).
    pub allow_unauthenticated: bool,
    /// The most reads (not watches) in flight; more get 429 with `Retry-After`. `0`: no
    /// limit, as kube-apiserver's flag of the same name.
    pub max_requests_inflight: usize,
    /// The most writes in flight; more get 429 with `Retry-After`. `0`: no limit.
    pub max_mutating_requests_inflight: usize,
    /// How long a request other than a watch may take before it is answered 504.
    pub request_timeout: Duration,
    /// How long a connection may take to send a request's headers, or sit idle between
    /// requests, before it is closed (a slowloris holds nothing for longer).
    pub header_read_timeout: Duration,
    /// The most connections open at once; more wait to be accepted. `0`: no limit.
    pub max_connections: usize,
}

/// The PEM files TLS is served with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: std::path::PathBuf,
    /// Its private key.
    pub key: std::path::PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            resources: vec![
                ResourceDef::config_maps(),
                ResourceDef::pods(),
                ResourceDef::secrets(),
                ResourceDef::events(),
                ResourceDef::namespaces(),
            ],
            storage: StorageSettings::Memory,
            window: None,
            window_bytes: 128 << 20,
            watcher_buffer: None,
            slow_watcher_policy: SlowWatcherPolicy::Park,
            max_watches: 10_000,
            max_body_bytes: 3 * 1024 * 1024,
            write_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            tls: None,
            token_auth_file: None,
            allow_unauthenticated: false,
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
            request_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(30),
            max_connections: 20_000,
        }
    }
}
