//! `watchcache-plugin-host`: watches a plugin directory and registers the plugins that
//! appear in it: type `example` (printed as they come and go) and type `watch-consumer`,
//! which receive a demo cacher's events (`demo/N`, one a second) through
//! [`WatchConsumer`]. A demo of the crate: run it, then start `watchcache-test-plugin`
//! with a socket in the directory.

use clap::Parser;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use watchcache::Cacher;
use watchcache_plugins::consumer::{WatchConsumer, PLUGIN_TYPE};
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
    // The state plugins consume: one change a second.
    let cacher: Cacher<String> = Cacher::builder().build();
    let producer = cacher.producer();
    tokio::spawn(async move {
        for tick in 1u64.. {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if producer.put_async(format!("demo/{}", tick % 10), format!("tick {tick}")).await.is_err() {
                break;
            }
        }
    });
    let consumer = WatchConsumer::new(cacher, |value: &String| value.clone().into_bytes());
    let handlers: HashMap<String, Arc<dyn Handler>> = HashMap::from([
        ("example".to_owned(), Arc::new(Printing) as _),
        (PLUGIN_TYPE.to_owned(), Arc::new(consumer) as _),
    ]);
    Reconciler::new(desired, handlers)
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    std::process::ExitCode::SUCCESS
}
