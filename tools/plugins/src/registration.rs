//! The registration protocol's client: gRPC over the plugin's Unix socket, with the
//! kubelet's timeouts (dial 10 s, `GetInfo` 1 s, the status notification 5 s).

use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint, Uri};

/// The generated messages and services of `pluginregistration`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod proto {
    tonic::include_proto!("pluginregistration");
}

use proto::registration_client::RegistrationClient;
use proto::{InfoRequest, PluginInfo, RegistrationStatus};

/// How long dialling a plugin's socket may take.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `GetInfo` may take.
pub const GET_INFO_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the status notification may take.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to one plugin's registration service.
#[derive(Debug, Clone)]
pub struct PluginClient {
    client: RegistrationClient<Channel>,
}

/// Opens a gRPC channel over the Unix socket at `path`.
pub(crate) async fn unix_channel(path: &Path) -> Result<Channel, String> {
    let shown = path.display().to_string();
    let path: PathBuf = path.to_owned();
    let connector = tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move {
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                tokio::net::UnixStream::connect(path).await?,
            ))
        }
    });
    // The URI is required by the API and unused: the connector dials the socket.
    Endpoint::from_static("http://plugin.invalid")
        .connect_timeout(DIAL_TIMEOUT)
        .connect_with_connector(connector)
        .await
        .map_err(|error| format!("cannot dial {shown}: {error}"))
}

impl PluginClient {
    /// Dials the plugin at `path`.
    ///
    /// # Errors
    /// The socket does not answer within [`DIAL_TIMEOUT`].
    pub async fn dial(path: &Path) -> Result<Self, String> {
        let channel = tokio::time::timeout(DIAL_TIMEOUT, unix_channel(path))
            .await
            .map_err(|_| format!("dialling {} timed out", path.display()))??;
        Ok(Self { client: RegistrationClient::new(channel) })
    }

    /// Asks the plugin who it is.
    ///
    /// # Errors
    /// The call fails or takes longer than [`GET_INFO_TIMEOUT`].
    pub async fn get_info(&mut self) -> Result<PluginInfo, String> {
        match tokio::time::timeout(GET_INFO_TIMEOUT, self.client.get_info(InfoRequest {})).await {
            Ok(Ok(info)) => Ok(info.into_inner()),
            Ok(Err(status)) => Err(format!("GetInfo failed: {}", status.message())),
            Err(_) => Err("GetInfo timed out".to_owned()),
        }
    }

    /// Tells the plugin whether it was registered (and why not).
    ///
    /// # Errors
    /// The call fails or takes longer than [`NOTIFY_TIMEOUT`].
    pub async fn notify(&mut self, registered: bool, error: &str) -> Result<(), String> {
        let status = RegistrationStatus { plugin_registered: registered, error: error.to_owned() };
        match tokio::time::timeout(NOTIFY_TIMEOUT, self.client.notify_registration_status(status)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(format!("NotifyRegistrationStatus failed: {}", status.message())),
            Err(_) => Err("NotifyRegistrationStatus timed out".to_owned()),
        }
    }
}
