//! `watchcache-test-plugin`: a plugin for the tests and the README's demo. It serves the
//! kubelet's `Registration` service on a Unix socket and prints each registration status
//! it is told (`registered` or `refused: REASON`), one per line.

use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;
use tonic::{Request, Response, Status};
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

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flags = Flags::parse();
    let _ = std::fs::remove_file(&flags.socket);
    let listener = tokio::net::UnixListener::bind(&flags.socket)?;
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    println!("serving {}", flags.socket.display());
    tonic::transport::Server::builder()
        .add_service(RegistrationServer::new(Plugin { flags }))
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}
