//! etcd members a test starts itself: Debian's etcd 3.4 (`ETCD`, which `cargo xtask test`
//! provides, else `etcd` on the `PATH`), on free loopback ports, with data in a temp
//! dir. A member is killed when the cluster is dropped, and also if the test's thread
//! dies first (`PR_SET_PDEATHSIG`): none outlives its test.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A failsafe for a member's start: a hang fails the test instead of blocking CI.
const START: Duration = Duration::from_secs(60);

/// How many leader elections an etcdctl call sits out before it fails.
const ELECTIONS: usize = 10;

struct Member {
    name: String,
    client: String,
    peer: String,
    process: Option<Child>,
}

/// A cluster of one or more members.
pub struct Etcd {
    members: Vec<Member>,
    /// Every member's data, removed with the cluster.
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port").port()
}

fn program(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

impl Etcd {
    /// A cluster of `members` members, each serving clients once this returns.
    pub fn start(members: usize) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let members: Vec<Member> = (0..members)
            .map(|index| Member {
                name: format!("m{index}"),
                client: format!("http://127.0.0.1:{}", free_port()),
                peer: format!("http://127.0.0.1:{}", free_port()),
                process: None,
            })
            .collect();
        let mut cluster = Self { members, dir };
        let started: Vec<_> = (0..cluster.members.len()).map(|index| cluster.launch(index, "new")).collect();
        started.into_iter().for_each(wait_serving);
        cluster
    }

    /// The members' client URLs.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|member| member.client.clone()).collect()
    }

    fn initial_cluster(&self) -> String {
        let members = self.members.iter().map(|member| format!("{}={}", member.name, member.peer));
        members.collect::<Vec<_>>().join(",")
    }

    /// Starts member `index`; the receiver says when it serves clients.
    fn launch(&mut self, index: usize, state: &str) -> mpsc::Receiver<()> {
        let initial_cluster = self.initial_cluster();
        let member = &mut self.members[index];
        let data = self.dir.path().join(&member.name);
        let mut command = Command::new(program("ETCD", "etcd"));
        command
            .args(["--name", &member.name, "--data-dir", data.to_str().unwrap()])
            .args(["--listen-client-urls", &member.client, "--advertise-client-urls", &member.client])
            .args(["--listen-peer-urls", &member.peer, "--initial-advertise-peer-urls", &member.peer])
            .args(["--initial-cluster", &initial_cluster, "--initial-cluster-state", state])
            .args(["--logger", "zap", "--log-outputs", "stderr", "--unsafe-no-fsync"])
            // Progress notifications often, so that tests see them race events too.
            .args(["--experimental-watch-progress-notify-interval", "500ms"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: `prctl` is async-signal-safe and touches no state of the parent's.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut process = command.spawn().unwrap_or_else(|error| {
            panic!("cannot run etcd ({error}): run the tests with `cargo xtask test`, or set ETCD")
        });
        let stderr = process.stderr.take().expect("piped stderr");
        member.process = Some(process);
        let (serving, ready) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("serving client traffic") {
                    let _ = serving.send(());
                }
            }
        });
        ready
    }

    /// Kills member `index` with SIGKILL.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut process) = self.members[index].process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// Starts member `index` again on its data, once it serves clients.
    pub fn restart(&mut self, index: usize) {
        wait_serving(self.launch(index, "existing"));
    }

    /// The index of the member that leads now.
    pub fn leader(&self) -> usize {
        let output = self.etcdctl(&["endpoint", "status", "--write-out", "json"]);
        let statuses: serde_json::Value = serde_json::from_slice(&output.stdout).expect("etcdctl's json");
        let status = statuses.as_array().expect("one status per endpoint");
        status
            .iter()
            .find(|status| status["Status"]["leader"] == status["Status"]["header"]["member_id"])
            .and_then(|status| status["Endpoint"].as_str())
            .and_then(|endpoint| self.members.iter().position(|member| member.client == endpoint))
            .expect("a leader")
    }

    /// Runs `etcdctl` (`ETCDCTL`, else on the `PATH`) against the live members, as a
    /// client would: again while a follower times requests out during an election.
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        let live: Vec<_> = self
            .members
            .iter()
            .filter(|member| member.process.is_some())
            .map(|member| member.client.as_str())
            .collect();
        let mut elections = 0;
        loop {
            let output = Command::new(program("ETCDCTL", "etcdctl"))
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={}", live.join(",")))
                .arg("--command-timeout=15s")
                .args(args)
                .output()
                .unwrap_or_else(|error| {
                    panic!("cannot run etcdctl ({error}): run the tests with `cargo xtask test`")
                });
            let stderr = String::from_utf8_lossy(&output.stderr);
            let electing = stderr.contains("Unavailable") || stderr.contains("deadline exceeded");
            if output.status.success() || !electing || elections == ELECTIONS {
                assert!(output.status.success(), "etcdctl {args:?}: {stderr}");
                return output;
            }
            elections += 1;
        }
    }
}

fn wait_serving(ready: mpsc::Receiver<()>) {
    ready.recv_timeout(START).expect("an etcd member did not start serving");
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for index in 0..self.members.len() {
            self.kill(index);
        }
    }
}
