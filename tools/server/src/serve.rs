//! The server: its state, its router, and the connection loop with a write timeout per
//! connection and graceful shutdown.

use crate::metrics::Metrics;
use crate::registry::{Backing, Registry};
use crate::routes;
use crate::state::{AppState, State};
use crate::{Settings, StorageSettings};
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
use tokio::sync::Semaphore;
use tokio::time::Sleep;

/// A running set of cachers and the HTTP API over them.
#[derive(Debug)]
pub struct Server {
    state: AppState,
    shutdown: tokio::sync::watch::Sender<bool>,
}

/// Why a server could not be set up.
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
}

impl Server {
    /// Builds the cachers of `settings.resources` (each starts its dispatcher thread) on
    /// the storage `settings.storage` names; on etcd, starts each resource's reflector on
    /// the current tokio runtime (`/readyz` answers 503 until each has listed).
    ///
    /// # Errors
    /// A resource named twice; etcd endpoints that are not URLs.
    pub async fn new(settings: Settings) -> Result<Self, ServerError> {
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
        let (shutdown, shutting_down) = tokio::sync::watch::channel(false);
        let watch_slots = Arc::new(Semaphore::new(settings.max_watches));
        let state = Arc::new(State { registry, metrics, settings, watch_slots, shutting_down });
        Ok(Self { state, shutdown })
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

    /// Serves HTTP/1.1 on `listener` until `signal` completes, then shuts down
    /// gracefully: stops accepting, ends open watches, waits up to
    /// [`Settings::shutdown_grace`] for responses in flight, and stops the cachers.
    ///
    /// # Errors
    /// Only from the listener's own setup; failed accepts and connections are logged.
    pub async fn serve(self, listener: TcpListener, signal: impl Future<Output = ()>) -> io::Result<()> {
        let router = self.router();
        let graceful = GracefulShutdown::new();
        let write_timeout = self.state.settings.write_timeout;
        let mut signal = std::pin::pin!(signal);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let io = TokioIo::new(WriteTimeout::new(stream, write_timeout));
                        let service = TowerToHyperService::new(router.clone());
                        let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
                        let connection = graceful.watch(connection);
                        tokio::spawn(async move {
                            if let Err(error) = connection.await {
                                tracing::debug!(%peer, %error, "connection ended with an error");
                            }
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

/// A connection whose writes fail with `TimedOut` once one has been blocked for the
/// timeout: a client that stops reading fills its socket buffer, and is then dropped
/// instead of holding the connection (and its watch) open forever.
struct WriteTimeout {
    stream: TcpStream,
    timeout: Duration,
    /// Running while a write is blocked; cleared by any write that makes progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl WriteTimeout {
    fn new(stream: TcpStream, timeout: Duration) -> Self {
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

impl AsyncRead for WriteTimeout {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteTimeout {
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
