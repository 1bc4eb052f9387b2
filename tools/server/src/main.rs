//! `watchcache-server`: serve the Kubernetes list/watch API from embedded cachers.
//! Bad flags exit with code 2; a listener that cannot bind, with code 1.

use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use watchcache::SlowWatcherPolicy;
use watchcache_server::{ResourceDef, Server, Settings, StorageSettings};

/// Serves configmaps, pods and any resource named with --resource over the Kubernetes
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
    /// Each watch's buffer, in events (default: the cacher's).
    #[arg(long)]
    watcher_buffer: Option<usize>,
    /// What happens to a watch that does not keep up.
    #[arg(long, value_enum, default_value_t = Policy::Park)]
    slow_watchers: Policy,
    /// The most watches open at once.
    #[arg(long, default_value_t = 10_000)]
    max_watches: usize,
    /// The largest request body, in bytes.
    #[arg(long, default_value_t = 3 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Seconds a write to a client may stay blocked before it is disconnected.
    #[arg(long, default_value_t = 10)]
    write_timeout_seconds: u64,
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
    let storage = if flags.etcd_servers.is_empty() {
        StorageSettings::Memory
    } else {
        StorageSettings::Etcd { servers: flags.etcd_servers.clone(), prefix: flags.etcd_prefix.clone() }
    };
    let mut settings = Settings {
        storage: storage.clone(),
        window: flags.window,
        watcher_buffer: flags.watcher_buffer,
        slow_watcher_policy: match flags.slow_watchers {
            Policy::Park => SlowWatcherPolicy::Park,
            Policy::Terminate => SlowWatcherPolicy::Terminate,
        },
        max_watches: flags.max_watches,
        max_body_bytes: flags.max_body_bytes,
        write_timeout: Duration::from_secs(flags.write_timeout_seconds),
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
