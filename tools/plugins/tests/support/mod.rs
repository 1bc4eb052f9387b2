//! The test plugin as a separate process, and the lines it prints.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// A failsafe: a hang fails the test instead of blocking CI.
pub const HANG: Duration = Duration::from_secs(30);

/// `watchcache-test-plugin` serving on `socket`; killed when dropped.
pub struct Plugin {
    child: Child,
    lines: UnboundedReceiver<String>,
}

impl Plugin {
    pub fn start(socket: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_watchcache-test-plugin"))
            .arg("--socket")
            .arg(socket)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the test plugin starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    async fn next_line(&mut self) -> String {
        let line = tokio::time::timeout(HANG, self.lines.recv()).await.expect("a line from the plugin");
        line.expect("the plugin exited")
    }

    /// Waits until it listens on its socket (its first line).
    pub async fn serving(&mut self) {
        let line = self.next_line().await;
        assert!(line.starts_with("serving"), "{line}");
    }

    /// The next status the host told it (after its `serving` line) is `wanted`.
    pub async fn expect(&mut self, wanted: &str) {
        let line = loop {
            let line = self.next_line().await;
            if !line.starts_with("serving") {
                break line;
            }
        };
        assert_eq!(line, wanted);
    }

    /// Waits for the line `wanted`, skipping others.
    pub async fn wait_for(&mut self, wanted: &str) {
        while self.next_line().await != wanted {}
    }

    /// Kills it now, as dropping it does, where the test reads better with a verb.
    pub fn kill(self) {
        drop(self);
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
