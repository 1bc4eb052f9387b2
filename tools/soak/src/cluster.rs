//! The processes under test, which the soak starts, kills and restarts: the server, and
//! on etcd a three-member etcd cluster on loopback.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A free loopback port (bound and released: the process about to use it binds it
/// with `SO_REUSEADDR`, as etcd and the server do).
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `command`, set to receive SIGKILL when the thread that spawns it ends — with the soak
/// itself, even a soak killed with SIGKILL, which runs no `Drop`. The soak spawns from
/// its runtime's worker threads and its main thread, which live as long as it does.
fn dies_with_the_soak(command: &mut Command) -> &mut Command {
    // SAFETY: the closure runs in the child between fork and exec; `prctl` is
    // async-signal-safe and touches no state shared with the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        })
    }
}

/// Kills `child` with SIGKILL and reaps it.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A three-member etcd cluster, each member's data in `dir`.
#[derive(Debug)]
pub(crate) struct Etcd {
    binary: PathBuf,
    dir: PathBuf,
    /// Client and peer port of each member.
    ports: Vec<(u16, u16)>,
    members: Vec<Option<Child>>,
}

impl Etcd {
    pub(crate) fn start(binary: &Path, dir: &Path) -> std::io::Result<Self> {
        let ports = (0..3).map(|_| Ok((free_port()?, free_port()?))).collect::<std::io::Result<Vec<_>>>()?;
        let mut etcd = Self { binary: binary.to_owned(), dir: dir.to_owned(), ports, members: Vec::new() };
        etcd.members = (0..3).map(|member| etcd.spawn(member).map(Some)).collect::<std::io::Result<_>>()?;
        Ok(etcd)
    }

    fn spawn(&self, member: usize) -> std::io::Result<Child> {
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let cluster: Vec<String> =
            self.ports.iter().enumerate().map(|(at, (_, peer))| format!("m{at}={}", url(*peer))).collect();
        let (client, peer) = self.ports[member];
        dies_with_the_soak(&mut Command::new(&self.binary))
            .args(["--name", &format!("m{member}")])
            .arg("--data-dir")
            .arg(self.dir.join(format!("m{member}")))
            .args(["--listen-client-urls", &url(client), "--advertise-client-urls", &url(client)])
            .args(["--listen-peer-urls", &url(peer), "--initial-advertise-peer-urls", &url(peer)])
            .args(["--initial-cluster", &cluster.join(","), "--initial-cluster-state", "new"])
            .args(["--logger", "zap", "--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    }

    /// Every member's client URL.
    pub(crate) fn endpoints(&self) -> Vec<String> {
        self.ports.iter().map(|(client, _)| format!("http://127.0.0.1:{client}")).collect()
    }

    /// Kills `member` (SIGKILL); it stays down until [`Self::restart`].
    pub(crate) fn kill(&mut self, member: usize) {
        if let Some(mut child) = self.members[member].take() {
            kill(&mut child);
        }
    }

    pub(crate) fn restart(&mut self, member: usize) -> std::io::Result<()> {
        self.kill(member);
        self.members[member] = Some(self.spawn(member)?);
        Ok(())
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        (0..self.members.len()).for_each(|member| self.kill(member));
    }
}

/// `watchcache-server` on a fixed loopback port, so that clients keep their address
/// across a restart.
#[derive(Debug)]
pub(crate) struct Server {
    binary: PathBuf,
    args: Vec<String>,
    pub(crate) port: u16,
    child: Option<Child>,
}

impl Server {
    pub(crate) fn start(binary: &Path, etcd: Option<&[String]>) -> std::io::Result<Self> {
        let mut args = Vec::new();
        if let Some(endpoints) = etcd {
            args.extend(["--etcd-servers".to_owned(), endpoints.join(",")]);
        }
        let mut server = Self { binary: binary.to_owned(), args, port: free_port()?, child: None };
        server.restart()?;
        Ok(server)
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL, as a crash) and starts it again.
    pub(crate) fn restart(&mut self) -> std::io::Result<()> {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
        let child = dies_with_the_soak(&mut Command::new(&self.binary))
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(&self.args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }
}

/// The resident memory and open descriptors of process `pid`, from `/proc`.
pub(crate) fn usage(pid: u32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss_kib * 1024, fds))
}

/// How long to wait between polls of a process that is starting.
pub(crate) const POLL: Duration = Duration::from_millis(50);
