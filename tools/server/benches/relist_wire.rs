//! `relist_wire`: the relist over the wire, on etcd. A `watchcache-server` process
//! reflects a three-member etcd through one member, with 10,000 config maps and 1,000
//! open watch connections (half selecting one node's objects by label, of 100 nodes;
//! half every object). The member is killed, every object is changed through the other
//! two, etcd compacts past the server's revision, and the member comes back: the
//! server's etcd watch cannot resume, so it relists, and its cacher delivers the
//! difference to the open watches.
//!
//! Reported per run: the time from the member's restart until every watch has seen every
//! change it is owed (the reflector's reconnection backoff included), the time from the
//! relist (its counter seen to move on `/metrics`) until then, the owed changes per second
//! over the latter, and the watches that ended — which must be none: the run panics on
//! any, and on a server-side termination. kube-apiserver 1.20's Cacher instead ends every
//! watch at a relist (`terminateAllWatchers`); its clients list again and watch again.
//!
//! `cargo bench -p watchcache-server --bench relist_wire` runs it `RELIST_RUNS` times
//! (default 3) and prints each run and the median; `-- --test` runs one small run, as a
//! check that it works. etcd is `ETCD`/`ETCDCTL` (`eval "$(cargo xtask env)"`), else on
//! the `PATH`.

#![allow(missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use etcd_client::{Client, CompactionOptions, Txn, TxnOp};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::etcd::Etcd;
use support::ServerProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const NODES: u64 = 100;
/// Puts per etcd transaction (etcd's default limit is 128 operations).
const PUTS_PER_TXN: u64 = 100;
const RELISTS: &str = r#"watchcache_relists_total{resource="configmaps"} "#;
const TERMINATIONS: &str = r#"watchcache_terminations_total{resource="configmaps"} "#;

struct Size {
    objects: u64,
    watches: u64,
}

struct Run {
    from_restart: Duration,
    from_relist: Duration,
    owed: u64,
}

fn main() {
    let check = std::env::args().any(|argument| argument == "--test");
    let (size, runs) = if check {
        (Size { objects: 200, watches: 20 }, 1)
    } else {
        let runs = std::env::var("RELIST_RUNS").ok().and_then(|runs| runs.parse().ok()).unwrap_or(3);
        (Size { objects: 10_000, watches: 1_000 }, runs)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut results: Vec<Run> = (0..runs)
        .map(|index| {
            let run = runtime.block_on(relist_once(&size));
            println!(
                "relist_wire run {}: {} objects, {} watches: {:.2} s from the restart, {:.2} s from the relist, \
                 {:.0} owed changes/s, 0 watches closed",
                index + 1,
                size.objects,
                size.watches,
                run.from_restart.as_secs_f64(),
                run.from_relist.as_secs_f64(),
                run.owed as f64 / run.from_relist.as_secs_f64(),
            );
            run
        })
        .collect();
    results.sort_by_key(|run| run.from_relist);
    let median = &results[results.len() / 2];
    println!(
        "relist_wire median of {runs}: {:.2} s from the relist ({:.2}–{:.2}), {:.0} owed changes/s",
        median.from_relist.as_secs_f64(),
        results[0].from_relist.as_secs_f64(),
        results[results.len() - 1].from_relist.as_secs_f64(),
        median.owed as f64 / median.from_relist.as_secs_f64(),
    );
}

async fn relist_once(size: &Size) -> Run {
    let mut etcd = Etcd::start(3);
    let endpoints = etcd.endpoints();
    let server = ServerProcess::start(&["--etcd-servers", &endpoints[0], "--max-watches", "20000"]);
    let api = server.client();
    // The writer stays on the members that stay up.
    let mut writer = Client::connect(&endpoints[1..], None).await.expect("etcd answers");
    put_all(&mut writer, size.objects, 0).await;
    // A list with `resourceVersion` unset waits for the cacher to reach etcd's revision.
    let list = text(&api, "/api/v1/namespaces/default/configmaps?limit=1").await;
    let listed: serde_json::Value = serde_json::from_str(&list).expect("a list");
    let revision = listed["metadata"]["resourceVersion"].as_str().expect("a revision").to_owned();

    let (done, mut finished) = mpsc::unbounded_channel();
    let closed = Arc::new(AtomicU64::new(0));
    let mut owed_total = 0;
    let mut opened = Vec::new();
    for index in 0..size.watches {
        let (selector, owed) = if index % 2 == 0 {
            let node = index / 2 % NODES;
            (
                format!("&labelSelector=node%3Dnode-{node}"),
                (0..size.objects).filter(|object| object % NODES == node).count() as u64,
            )
        } else {
            (String::new(), size.objects)
        };
        owed_total += owed;
        let path =
            format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={revision}{selector}");
        let stream = open_watch(&server.address, &path).await;
        opened.push(tokio::spawn(count_until(stream, owed, done.clone(), closed.clone())));
    }

    etcd.kill(0);
    put_all(&mut writer, size.objects, 1).await;
    let latest = writer.get("/", None).await.expect("etcd answers").header().expect("a header").revision();
    writer.compact(latest, Some(CompactionOptions::new().with_physical())).await.expect("etcd compacts");
    let relists_before = counter(&text(&api, "/metrics").await, RELISTS);
    let restarted = Instant::now();
    etcd.restart(0);
    let relisted = {
        let api = api.clone();
        tokio::spawn(async move {
            // Polled rather than waited on: the server says nothing else when it relists.
            loop {
                if counter(&text(&api, "/metrics").await, RELISTS) > relists_before {
                    return Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    for _ in 0..size.watches {
        finished.recv().await.expect("every watch reports");
    }
    let all_delivered = Instant::now();
    let relisted = relisted.await.expect("the relist is seen");
    assert_eq!(closed.load(Ordering::Relaxed), 0, "a watch ended at the relist");
    assert_eq!(counter(&text(&api, "/metrics").await, TERMINATIONS), 0, "the server ended a watch");
    opened.iter().for_each(tokio::task::JoinHandle::abort);
    Run {
        from_restart: all_delivered - restarted,
        from_relist: all_delivered.saturating_duration_since(relisted),
        owed: owed_total,
    }
}

/// Writes config map `0..objects` at `version` straight to etcd, as another writer would.
async fn put_all(client: &mut Client, objects: u64, version: u64) {
    for first in (0..objects).step_by(PUTS_PER_TXN as usize) {
        let puts: Vec<TxnOp> = (first..objects.min(first + PUTS_PER_TXN))
            .map(|object| {
                let value = format!(
                    r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"cm-{object}","namespace":"default","labels":{{"node":"node-{}"}}}},"data":{{"version":"{version}"}}}}"#,
                    object % NODES
                );
                TxnOp::put(format!("/registry/configmaps/default/cm-{object}"), value, None)
            })
            .collect();
        client.txn(Txn::new().and_then(puts)).await.expect("etcd takes the writes");
    }
}

async fn text(api: &kube::Client, path: &str) -> String {
    let request = http::Request::get(path).body(Vec::new()).expect("a request");
    api.request_text(request).await.expect("the server answers")
}

fn counter(metrics: &str, prefix: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(prefix))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

/// A watch request on its own connection, once the response head says 200.
async fn open_watch(address: &str, path: &str) -> (TcpStream, Vec<u8>) {
    let mut stream = TcpStream::connect(address).await.expect("the server accepts");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: application/json\r\n\r\n").as_bytes(),
        )
        .await
        .expect("the request is sent");
    let mut input = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = stream.read(&mut buffer).await.expect("the server answers");
        assert!(read > 0, "the server closed a watch before answering it");
        input.extend_from_slice(&buffer[..read]);
        if let Some(end) = input.windows(4).position(|window| window == b"\r\n\r\n") {
            assert!(
                input.starts_with(b"HTTP/1.1 200"),
                "a watch was refused: {}",
                String::from_utf8_lossy(&input)
            );
            return (stream, input.split_off(end + 4));
        }
    }
}

/// Counts a watch's `MODIFIED` events until it has `owed` of them, then says so on `done`;
/// counts the watch in `closed` if it ends first. The server's chunks hold whole lines,
/// so a marker is never cut by chunk framing, only by a read's end (hence `carry`).
async fn count_until(
    (mut stream, mut input): (TcpStream, Vec<u8>),
    owed: u64,
    done: mpsc::UnboundedSender<()>,
    closed: Arc<AtomicU64>,
) {
    const MARKER: &[u8] = br#"{"type":"MODIFIED""#;
    let mut seen = 0;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        seen += input.windows(MARKER.len()).filter(|window| *window == MARKER).count() as u64;
        if seen >= owed {
            let _ = done.send(());
            return;
        }
        let carry = input.len().saturating_sub(MARKER.len() - 1);
        input.drain(..carry);
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                closed.fetch_add(1, Ordering::Relaxed);
                let _ = done.send(());
                return;
            }
            Ok(read) => input.extend_from_slice(&buffer[..read]),
        }
    }
}
