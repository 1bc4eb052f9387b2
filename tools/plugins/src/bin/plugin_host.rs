//! `watchcache-plugin-host`: watches a plugin directory and registers the plugins of
//! type `example` that appear in it, printing each registration and unregistration.
//! A demo of the crate: run it, then start `watchcache-test-plugin` with a socket in the
//! directory.

use clap::Parser;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use watchcache_plugins::desired::desired_state;
use watchcache_plugins::reconciler::{Handler, Reconciler};
use watchcache_plugins::watcher::SocketDirWatcher;

/// Registers the `example` plugins whose sockets appear in DIR.
#[derive(Debug, Parser)]
struct Flags {
    /// The plugin directory (created if missing).
    #[arg(long, default_value = "/tmp/watchcache-plugins")]
    dir: PathBuf,
}

/// Prints what it is asked to do.
struct Printing;

impl Handler for Printing {
    fn validate(&self, _: &str, _: &Path, _: &[String]) -> Result<(), String> {
        Ok(())
    }

    fn register(&self, name: &str, endpoint: &Path, versions: &[String]) -> Result<(), String> {
        println!("registered {name} at {} ({})", endpoint.display(), versions.join(", "));
        Ok(())
    }

    fn deregister(&self, name: &str) {
        println!("unregistered {name}");
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let flags = Flags::parse();
    let (desired, writer) = desired_state();
    let _watcher = match SocketDirWatcher::start(&flags.dir, writer) {
        Ok(watcher) => watcher,
        Err(error) => {
            eprintln!("watchcache-plugin-host: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("watching {}", flags.dir.display());
    let handlers: HashMap<String, Arc<dyn Handler>> =
        HashMap::from([("example".to_owned(), Arc::new(Printing) as _)]);
    Reconciler::new(desired, handlers)
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    std::process::ExitCode::SUCCESS
}
