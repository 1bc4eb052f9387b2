//! The server: its state, its router, and the connection loop with a write timeout per
//! connection and graceful shutdown.

use crate::auth::Tokens;
use crate::metrics::Metrics;
use crate::registry::{Backing, Registry};
use crate::state::{slots, AppState, State};
use crate::{limits, routes};
use crate::{Settings, StorageSettings, TlsFiles};
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

/// A running set of cachers and the HTTP API over them.
pub struct Server {
    state: AppState,
    shutdown: tokio::sync::watch::Sender<bool>,
    /// The TLS configuration, when serving TLS.
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("state", &self.state).field("tls", &self.tls.is_some()).finish()
    }
}

/// Why a server could not be set up, or could not serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Two resources share a group, version and plural.
    #[error("resource {0} is named twice")]
    ResourceNamedTwice(String),
    /// The etcd endpoints cannot be used.
    #[error("cannot use the etcd servers {servers:?}: {reason}")]
    Etcd {
        /// The endpoints given.
        servers: Vec<String>,
        /// What is wrong with them.
        reason: String,
    },
    /// The token file cannot be used.
    #[error(transparent)]
    Tokens(#[from] crate::auth::TokenFileError),
    /// The TLS certificate or key cannot be used.
    #[error("cannot serve TLS with {path}: {reason}")]
    Tls {
        /// The file at fault.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Listening beyond loopback without TLS and tokens, and without the operator's
    /// explicit consent.
    #[error(
        "listening on {address} serves other machines: give --tls-cert-file, --tls-private-key-file and \
         --token-auth-file, or --insecure-allow-unauthenticated to serve them without"
    )]
    Exposed {
        /// The address.
        address: std::net::SocketAddr,
    },
    /// The listener failed.
    #[error("the listener failed: {0}")]
    Io(#[from] io::Error),
}

/// The TLS acceptor for `files`.
fn tls_acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, ServerError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    fn at(path: &std::path::Path, error: impl std::fmt::Display) -> ServerError {
        ServerError::Tls { path: path.to_owned(), reason: error.to_string() }
    }
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| at(&files.cert, error))?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|error| at(&files.key, error))?;
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
    .map_err(|error| at(&files.cert, error))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

impl Server {
    /// Builds the cachers of `settings.resources` (each starts its dispatcher thread) on
    /// the storage `settings.storage` names; on etcd, starts each resource's reflector on
    /// the current tokio runtime (`/readyz` answers 503 until each has listed). Reads the
    /// token file and the TLS files the settings name.
    ///
    /// # Errors
    /// A resource named twice; etcd endpoints that are not URLs; a token, certificate or
    /// key file that cannot be used.
    pub async fn new(settings: Settings) -> Result<Self, ServerError> {
        let tokens = settings.token_auth_file.as_deref().map(Tokens::from_file).transpose()?;
        let tls = settings.tls.as_ref().map(tls_acceptor).transpose()?;
        let metrics = Metrics::new();
        let client = match &settings.storage {
            StorageSettings::Memory => None,
            StorageSettings::Etcd { servers, .. } => Some(
                etcd_client::Client::connect(
                    servers,
                    Some(etcd_client::ConnectOptions::new().with_keep_alive_while_idle(true)),
                )
                .await
                .map_err(|error| ServerError::Etcd { servers: servers.clone(), reason: error.to_string() })?,
            ),
        };
        let backing = match (&settings.storage, &client) {
            (StorageSettings::Etcd { prefix, .. }, Some(client)) => Backing::Etcd { client, prefix },
            _ => Backing::Memory,
        };
        let registry =
            Registry::new(&settings, &metrics, &backing).map_err(ServerError::ResourceNamedTwice)?;
        crate::namespaces::create_initial(&registry).await;
        let (shutdown, shutting_down) = tokio::sync::watch::channel(false);
        let state = Arc::new(State {
            registry,
            metrics,
            watch_slots: Arc::new(slots(settings.max_watches)),
            reading_slots: slots(settings.max_requests_inflight),
            mutating_slots: slots(settings.max_mutating_requests_inflight),
            tokens,
            settings,
            shutting_down,
        });
        Ok(Self { state, shutdown, tls })
    }

    /// The API as an [`axum::Router`], to mount in another server. Watches it serves end
    /// when [`Server::begin_shutdown`] is called.
    pub fn router(&self) -> Router {
        routes::router(self.state.clone())
    }

    /// Ends every open watch cleanly (after the lines it has) and refuses none of the
    /// other requests: the first step of a graceful shutdown.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Serves HTTP/1.1 (over TLS if configured) on `listener` until `signal` completes,
    /// then shuts down gracefully: stops accepting, ends open watches, waits up to
    /// [`Settings::shutdown_grace`] for responses in flight, and stops the cachers.
    ///
    /// On a loopback address only loopback `Host` names are served. Beyond loopback it
    /// needs TLS and a token file, unless [`Settings::allow_unauthenticated`] (which it
    /// warns about).
    ///
    /// # Errors
    /// `Exposed` for an address beyond loopback without TLS and tokens; the listener's own
    /// failures. Failed accepts and connections are logged.
    pub async fn serve(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()>,
    ) -> Result<(), ServerError> {
        let address = listener.local_addr()?;
        let settings = &self.state.settings;
        let loopback = address.ip().is_loopback();
        let guarded = self.tls.is_some() && self.state.tokens.is_some();
        if !loopback && !guarded {
            if !settings.allow_unauthenticated {
                return Err(ServerError::Exposed { address });
            }
            tracing::warn!(%address, "serving other machines without TLS and tokens: anyone who reaches this address can read and write");
        }
        let mut router = self.router();
        if loopback {
            router = router.layer(axum::middleware::from_fn(limits::loopback_only));
        }
        let graceful = GracefulShutdown::new();
        let connections = Arc::new(slots(settings.max_connections));
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(settings.header_read_timeout)
            .max_headers(MAX_HEADERS)
            .max_buf_size(MAX_HEAD_BYTES);
        let mut signal = std::pin::pin!(signal);
        loop {
            // At the connection cap, the next connection waits in the listen backlog.
            let permit = tokio::select! {
                permit = connections.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                () = &mut signal => break,
            };
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let service = TowerToHyperService::new(router.clone());
                        let connection = Connection { http: http.clone(), tls: self.tls.clone(), settings: settings.clone() };
                        let watcher = graceful.watcher();
                        tokio::spawn(async move {
                            connection.serve(stream, service, watcher).await;
                            tracing::trace!(%peer, "connection closed");
                            drop(permit);
                        });
                    }
                    // Out of descriptors and the like: back off instead of spinning.
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = &mut signal => break,
            }
        }
        drop(listener);
        tracing::info!("shutting down: ending watches");
        self.begin_shutdown();
        if tokio::time::timeout(self.state.settings.shutdown_grace, graceful.shutdown()).await.is_err() {
            tracing::warn!("connections still open after the grace period; closing them");
        }
        self.state.registry.shutdown();
        Ok(())
    }
}

/// The most request headers a request may have (more: 431).
const MAX_HEADERS: usize = 100;
/// About the most bytes of a request line and its headers (more: 431; the head is read
/// in growing steps, so the check may pass up to twice this): a URL with a long selector
/// fits, a connection that sends headers without end does not grow.
const MAX_HEAD_BYTES: usize = 256 * 1024;

/// How one accepted connection is served.
struct Connection {
    http: hyper::server::conn::http1::Builder,
    tls: Option<tokio_rustls::TlsAcceptor>,
    settings: Settings,
}

impl Connection {
    /// Serves HTTP/1.1 on `stream`, after a TLS handshake if configured (which must end
    /// within the header read timeout).
    async fn serve<S>(self, stream: TcpStream, service: S, graceful: hyper_util::server::graceful::Watcher)
    where
        S: hyper::service::HttpService<hyper::body::Incoming> + Send + 'static,
        S::Future: Send,
        S::ResBody: Send + 'static,
        <S::ResBody as hyper::body::Body>::Data: Send,
        <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let write_timeout = self.settings.write_timeout;
        let result = match self.tls {
            None => {
                let io = TokioIo::new(WriteTimeout::new(stream, write_timeout));
                graceful.watch(self.http.serve_connection(io, service)).await
            }
            Some(tls) => {
                let handshake = tokio::time::timeout(self.settings.header_read_timeout, tls.accept(stream));
                let stream = match handshake.await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => return tracing::debug!(%error, "TLS handshake failed"),
                    Err(_) => return tracing::debug!("TLS handshake timed out"),
                };
                let io = TokioIo::new(WriteTimeout::new(stream, write_timeout));
                graceful.watch(self.http.serve_connection(io, service)).await
            }
        };
        if let Err(error) = result {
            tracing::debug!(%error, "connection ended with an error");
        }
    }
}

/// A connection whose writes fail with `TimedOut` once one has been blocked for the
/// timeout: a client that stops reading fills its socket buffer, and is then dropped
/// instead of holding the connection (and its watch) open forever.
struct WriteTimeout<S> {
    stream: S,
    timeout: Duration,
    /// Running while a write is blocked; cleared by any write that makes progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteTimeout<S> {
    fn new(stream: S, timeout: Duration) -> Self {
        Self { stream, timeout, stalled: None }
    }

    /// Called when a write returned `Pending`: fails once it has been pending too long.
    fn poll_stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.timeout;
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading: write timed out",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(&mut self, poll: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.poll_stalled(cx),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.progress(poll, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.progress(poll, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_flush(cx);
        this.progress(poll, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
