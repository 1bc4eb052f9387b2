//! A server started in-process on an ephemeral loopback port, for the client tests.

#![allow(dead_code, unreachable_pub)]

pub mod etcd;

use std::net::SocketAddr;
use tokio::sync::oneshot;
use watchcache_server::{Server, ServerError, Settings};

/// A running server; shuts down gracefully when dropped.
pub struct Running {
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), ServerError>>>,
    tls: bool,
}

impl Running {
    pub async fn start(settings: Settings) -> Self {
        let tls = settings.tls.is_some();
        let server = Server::new(settings).await.expect("valid settings");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let address = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async move {
            let _ = stopped.await;
        }));
        Self { address, stop: Some(stop), task: Some(task), tls }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.address)
    }

    /// Shuts the server down and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// `watchcache-server` as its own process on an ephemeral loopback port; killed with
/// SIGKILL by `kill` or when dropped.
pub struct ServerProcess {
    process: std::process::Child,
    pub address: String,
    /// What the server logged after its start-up line, once it has exited.
    log: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl ServerProcess {
    /// Starts the binary with `args` (and `--listen 127.0.0.1:0`), once it is listening.
    pub fn start(args: &[&str]) -> Self {
        Self::start_logging(args, "info")
    }

    /// [`Self::start`] with `RUST_LOG` set to `filter`.
    pub fn start_logging(args: &[&str], filter: &str) -> Self {
        use std::io::BufRead;
        let mut process = std::process::Command::new(env!("CARGO_BIN_EXE_watchcache-server"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", filter)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the server binary runs");
        let stderr = process.stderr.take().expect("piped stderr");
        let mut lines = std::io::BufReader::new(stderr).lines();
        // The start-up line names the bound address: `address=127.0.0.1:PORT`.
        let address = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                let at = line.find("address=")? + "address=".len();
                Some(line[at..].split_whitespace().next()?.to_owned())
            })
            .expect("the server logs its address");
        let log = std::thread::spawn(move || lines.map_while(Result::ok).collect());
        Self { process, address, log: Some(log) }
    }

    /// Kills the server; everything it logged after starting.
    pub fn kill_and_log(mut self) -> String {
        self.kill();
        self.log.take().map(|log| log.join().expect("the log reader").join("\n")).unwrap_or_default()
    }

    /// A kube-rs client of it.
    pub fn client(&self) -> kube::Client {
        let url = format!("http://{}", self.address).parse().expect("a url");
        kube::Client::try_from(kube::Config::new(url)).expect("a client")
    }

    /// SIGKILL, no goodbye.
    pub fn kill(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `Accept` that asks for a `Table`, as `kubectl get` sends it first.
pub const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// The column names of a `Table`.
pub fn table_columns(table: &serde_json::Value) -> Vec<&str> {
    let columns = table["columnDefinitions"].as_array().map_or(&[][..], Vec::as_slice);
    columns.iter().filter_map(|column| column["name"].as_str()).collect()
}
