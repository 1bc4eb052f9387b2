//! `watchcache-test-plugin`: a plugin for the tests and the README's demo. It serves the
//! kubelet's `Registration` service on a Unix socket and prints each registration status
//! it is told (`registered` or `refused: REASON`), one per line. With `--consume-log` it
//! is a `watch-consumer`: it also serves `Consumer` on the same socket, appends each new
//! event to the log (`REVISION KEY`), skips what the log already has (so a restart sees
//! every event exactly once), acknowledges, and prints `consumed REVISION`.

use clap::Parser;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::{Request, Response, Status, Streaming};
use watchcache_plugins::consumer::proto::consumer_server::{Consumer, ConsumerServer};
use watchcache_plugins::consumer::proto::from_plugin::Message;
use watchcache_plugins::consumer::proto::{Event, FromPlugin, Subscribe};
use watchcache_plugins::registration::proto::registration_server::{Registration, RegistrationServer};
use watchcache_plugins::registration::proto::{
    InfoRequest, PluginInfo, RegistrationStatus, RegistrationStatusResponse,
};

/// Serves the plugin registration protocol on SOCKET.
#[derive(Debug, Parser)]
struct Flags {
    /// Where to create the socket (in the plugin directory).
    #[arg(long)]
    socket: PathBuf,
    /// The plugin type (which handler registers it).
    #[arg(long = "type", default_value = "example")]
    plugin_type: String,
    /// The plugin's name.
    #[arg(long, default_value = "test-plugin")]
    name: String,
    /// The endpoint to report (empty: this socket).
    #[arg(long, default_value = "")]
    endpoint: String,
    /// Supported versions, comma-separated.
    #[arg(long, default_value = "v1", value_delimiter = ',')]
    versions: Vec<String>,
    /// Wait this long before answering GetInfo.
    #[arg(long, default_value_t = 0)]
    stall_get_info_ms: u64,
    /// Answer NotifyRegistrationStatus with an error.
    #[arg(long)]
    fail_notify: bool,
    /// Consume events (type `watch-consumer`), logging them to this file.
    #[arg(long)]
    consume_log: Option<PathBuf>,
    /// With --consume-log: only keys with this prefix.
    #[arg(long, default_value = "")]
    prefix: String,
}

struct Plugin {
    flags: Flags,
}

#[tonic::async_trait]
impl Registration for Plugin {
    async fn get_info(&self, _: Request<InfoRequest>) -> Result<Response<PluginInfo>, Status> {
        tokio::time::sleep(Duration::from_millis(self.flags.stall_get_info_ms)).await;
        Ok(Response::new(PluginInfo {
            r#type: self.flags.plugin_type.clone(),
            name: self.flags.name.clone(),
            endpoint: self.flags.endpoint.clone(),
            supported_versions: self.flags.versions.clone(),
        }))
    }

    async fn notify_registration_status(
        &self,
        request: Request<RegistrationStatus>,
    ) -> Result<Response<RegistrationStatusResponse>, Status> {
        let status = request.into_inner();
        if status.plugin_registered {
            println!("registered");
        } else {
            println!("refused: {}", status.error);
        }
        if self.flags.fail_notify {
            return Err(Status::internal("the plugin failed to take the notification"));
        }
        Ok(Response::new(RegistrationStatusResponse {}))
    }
}

/// The consumer side: a log of what was processed, which is also where to resume.
struct LogConsumer {
    log: PathBuf,
    prefix: String,
}

/// The last revision in the log (0 when empty or missing), from complete lines only.
fn last_logged(log: &Path) -> u64 {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.split_inclusive('\n')
        .filter(|line| line.ends_with('\n'))
        .filter_map(|line| line.split_whitespace().next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

#[tonic::async_trait]
impl Consumer for LogConsumer {
    type ConsumeStream = tokio_stream::wrappers::ReceiverStream<Result<FromPlugin, Status>>;

    async fn consume(
        &self,
        request: Request<Streaming<Event>>,
    ) -> Result<Response<Self::ConsumeStream>, Status> {
        let mut events = request.into_inner();
        let (to_host, stream) = tokio::sync::mpsc::channel(64);
        let mut last = last_logged(&self.log);
        let subscribe = Subscribe { prefix: self.prefix.clone(), trigger: String::new(), resume_after: last };
        let _ = to_host.send(Ok(FromPlugin { message: Some(Message::Subscribe(subscribe)) })).await;
        let log = self.log.clone();
        tokio::spawn(async move {
            while let Ok(Some(event)) = events.message().await {
                if event.revision > last {
                    // One write per line: a kill lands before or after it, never inside.
                    let line = format!("{} {}\n", event.revision, event.key);
                    let mut file =
                        std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("the log");
                    file.write_all(line.as_bytes()).expect("a log line");
                    last = event.revision;
                    println!("consumed {}", event.revision);
                }
                if to_host.send(Ok(FromPlugin { message: Some(Message::Ack(event.revision)) })).await.is_err()
                {
                    break;
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(stream)))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flags = Flags::parse();
    let _ = std::fs::remove_file(&flags.socket);
    let listener = tokio::net::UnixListener::bind(&flags.socket)?;
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    println!("serving {}", flags.socket.display());
    let consumer = flags
        .consume_log
        .clone()
        .map(|log| ConsumerServer::new(LogConsumer { log, prefix: flags.prefix.clone() }));
    tonic::transport::Server::builder()
        .add_service(RegistrationServer::new(Plugin { flags }))
        .add_optional_service(consumer)
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}
