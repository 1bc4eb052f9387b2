//! `watchcache-server`: serve the Kubernetes list/watch API from embedded cachers.
//! Bad flags exit with code 2; a listener that cannot bind, with code 1.

use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use watchcache::SlowWatcherPolicy;
use watchcache_server::{ResourceDef, Server, Settings, StorageSettings, TlsFiles};

/// Serves configmaps, pods, secrets, events, namespaces and any resource named with
/// --resource over the Kubernetes
/// list/watch API from watchcache cachers: of the server's own memory by default, or of
/// etcd with --etcd-servers.
#[derive(Debug, Parser)]
#[command(version)]
struct Flags {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// etcd members' client URLs, comma-separated (e.g. http://127.0.0.1:2379): keep the
    /// objects in etcd, shared by every server on it. Without it, they live in this
    /// process's memory only.
    #[arg(long, value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// The etcd key prefix objects live under.
    #[arg(long, default_value = "/registry")]
    etcd_prefix: String,
    /// A further resource, as GROUP/VERSION/PLURAL/Kind (e.g. example.com/v1/widgets/Widget); repeatable.
    #[arg(long = "resource", value_parser = ResourceDef::parse)]
    resources: Vec<ResourceDef>,
    /// Events kept per resource for resuming watches (default: growing from 100 to 102,400).
    #[arg(long)]
    window: Option<usize>,
    /// The most bytes of objects kept per resource for resuming watches; the oldest
    /// events go first. 0: no bound.
    #[arg(long, default_value_t = 128 << 20)]
    window_bytes: usize,
    /// Each watch's buffer, in events (default: the cacher's).
    #[arg(long)]
    watcher_buffer: Option<usize>,
    /// What happens to a watch that does not keep up.
    #[arg(long, value_enum, default_value_t = Policy::Park)]
    slow_watchers: Policy,
    /// The most watches open at once; more are answered 429. 0: no limit.
    #[arg(long, default_value_t = 10_000)]
    max_watches: usize,
    /// The largest request body, in bytes.
    #[arg(long, default_value_t = 3 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Seconds a write to a client may stay blocked before it is disconnected.
    #[arg(long, default_value_t = 10)]
    write_timeout_seconds: u64,
    /// Serve TLS with this certificate chain (PEM, leaf first); needs --tls-private-key-file.
    #[arg(long, requires = "tls_private_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert-file.
    #[arg(long, requires = "tls_cert_file")]
    tls_private_key_file: Option<PathBuf>,
    /// Bearer tokens, one `token,user,uid,"group1,group2"` line each (kube-apiserver's
    /// format): every request must carry one.
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// Serve an address beyond loopback without TLS and tokens: anyone who reaches it can
    /// read and write.
    #[arg(long)]
    insecure_allow_unauthenticated: bool,
    /// The most reads (not watches) in flight; more are answered 429. 0: no limit.
    #[arg(long, default_value_t = 400)]
    max_requests_inflight: usize,
    /// The most writes in flight; more are answered 429. 0: no limit.
    #[arg(long, default_value_t = 200)]
    max_mutating_requests_inflight: usize,
    /// How long a request other than a watch may take (e.g. 60s) before a 504.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    request_timeout: Duration,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Policy {
    /// Take a slow watch out of live dispatch; it catches up from the window.
    Park,
    /// End a slow watch with a 410, as Kubernetes does.
    Terminate,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let flags = Flags::parse();
    raise_open_file_limit();
    let storage = if flags.etcd_servers.is_empty() {
        StorageSettings::Memory
    } else {
        StorageSettings::Etcd { servers: flags.etcd_servers.clone(), prefix: flags.etcd_prefix.clone() }
    };
    let mut settings = Settings {
        storage: storage.clone(),
        window: flags.window,
        window_bytes: flags.window_bytes,
        watcher_buffer: flags.watcher_buffer,
        slow_watcher_policy: match flags.slow_watchers {
            Policy::Park => SlowWatcherPolicy::Park,
            Policy::Terminate => SlowWatcherPolicy::Terminate,
        },
        max_watches: flags.max_watches,
        max_body_bytes: flags.max_body_bytes,
        write_timeout: Duration::from_secs(flags.write_timeout_seconds),
        tls: flags.tls_cert_file.zip(flags.tls_private_key_file).map(|(cert, key)| TlsFiles { cert, key }),
        token_auth_file: flags.token_auth_file,
        allow_unauthenticated: flags.insecure_allow_unauthenticated,
        max_requests_inflight: flags.max_requests_inflight,
        max_mutating_requests_inflight: flags.max_mutating_requests_inflight,
        request_timeout: flags.request_timeout,
        ..Settings::default()
    };
    settings.resources.extend(flags.resources);
    let server = match Server::new(settings).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("watchcache-server: {error}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(flags.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("watchcache-server: cannot listen on {}: {error}", flags.listen);
            return ExitCode::FAILURE;
        }
    };
    // The bound address, which differs from the flag's for port 0.
    let address =
        listener.local_addr().map_or_else(|_| flags.listen.to_string(), |address| address.to_string());
    match storage {
        StorageSettings::Etcd { servers, prefix } => {
            tracing::info!(%address, ?servers, %prefix, "serving from etcd");
        }
        _ => tracing::info!(%address, "serving from memory: the data lives only as long as this process"),
    }
    match server.serve(listener, terminated()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("watchcache-server: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft limit on open files to the hard limit: each watch is a connection, and
/// the usual soft limit of 1,024 would refuse connections long before `--max-watches`.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open file limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open file limit"),
    }
}

/// Completes on SIGTERM or Ctrl-C.
async fn terminated() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
