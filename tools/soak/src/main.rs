//! `watchcache-soak`: runs `watchcache-server` (in memory, or on a three-member etcd it
//! starts) for a given time under writers, watchers and paged lists, injects faults on a
//! schedule, and checks continuously what users rely on:
//!
//! - writers create, replace and delete, with and without preconditions (and with stale
//!   ones, which must be refused); every acknowledged write is the truth (on etcd, it
//!   must also be in etcd's own history, read beside the server);
//! - watchers list in pages, then watch, resume from their last `resourceVersion` after
//!   every end, stall and resume, disconnect mid-stream, relist after a 410; each
//!   watcher's view must equal the truth at every revision boundary (see `truth.rs`);
//!   bursts of watches open and close by the hundred;
//! - lists in pages during writes must equal the truth at their revision;
//! - faults: watchers that stop reading and clients that disconnect (always); on etcd,
//!   the server killed and restarted, an etcd member killed and restarted, compaction;
//! - the server's memory and open descriptors, read every second and reported every
//!   interval, must not grow without bound: the last quarter's floor at most twice the
//!   second quarter's plus a margin (a floor, so that a churn burst caught by a sample
//!   is not taken for a leak).
//!
//! Exits 0 with `violations: 0`, else 1 with the first violations printed.

mod cluster;
mod truth;

use clap::{Parser, ValueEnum};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, DeleteParams, ListParams, ObjectMeta, PostParams, Preconditions, WatchEvent, WatchParams,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use truth::{is_even, Seen, Selection, State, StreamCheck, Truth};

#[derive(Debug, Parser)]
#[command(version, about = "A soak with faults for watchcache-server")]
struct Flags {
    /// How long to run (e.g. 60s, 30m).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    duration: Duration,
    /// Where the server keeps its data.
    #[arg(long, value_enum, default_value_t = Storage::Memory)]
    storage: Storage,
    /// The server binary; by default `watchcache-server` beside this one.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The etcd binary (with `--storage etcd`); by default `$ETCD`, else `etcd`.
    #[arg(long)]
    etcd_bin: Option<PathBuf>,
    /// Writer tasks, each with its own keys.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    #[arg(long, default_value_t = 16)]
    keys_per_writer: usize,
    /// Watchers that run for the whole soak (half of them select `parity=even`).
    #[arg(long, default_value_t = 8)]
    watchers: usize,
    /// Watches opened and closed at once in each churn burst.
    #[arg(long, default_value_t = 500)]
    churn: usize,
    /// How often everything seen so far is checked against the truth.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    check_every: Duration,
    /// How often a fault is injected (in turn: a churn burst; on etcd also compaction,
    /// the server killed, an etcd member killed).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "8s")]
    fault_every: Duration,
    /// How often a report line is printed.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    report_every: Duration,
    /// The seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Storage {
    Memory,
    Etcd,
}

const NAMESPACE: &str = "default";
/// The most a write may take before it counts as unanswered.
const WRITE_PATIENCE: Duration = Duration::from_secs(15);
/// How long after an unanswered write it may still land: the server's request timeout
/// (60 s), after which it gives up on etcd, and a margin.
const LATE_LANDING: Duration = Duration::from_secs(90);
/// The most the fault injector may take to finish the fault under way when the soak
/// stops: a churn burst's opens, or a member's two seconds down and its restart.
const FAULT_PATIENCE: Duration = Duration::from_secs(60);
/// How often the server's memory and open files are read.
const USAGE_SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// The most violations printed.
const SHOWN: usize = 20;

/// What the soak counts, reported every interval.
#[derive(Debug, Default)]
struct Counters {
    writes: AtomicU64,
    refused_stale: AtomicU64,
    unanswered: AtomicU64,
    events: AtomicU64,
    boundaries: AtomicU64,
    lists: AtomicU64,
    watches: AtomicU64,
    expired: AtomicU64,
    stalls: AtomicU64,
    disconnects: AtomicU64,
    churned: AtomicU64,
    server_kills: AtomicU64,
    member_kills: AtomicU64,
    compactions: AtomicU64,
    violations: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// One long-running watcher: what it selects, and what it saw, not yet checked.
struct Watcher {
    selection: Selection,
    seen: Mutex<VecDeque<Seen>>,
}

struct Soak {
    storage: Storage,
    pods: Api<Pod>,
    truth: Mutex<Truth>,
    /// The newest revision a writer was answered with.
    newest_ack: AtomicU64,
    /// On etcd: acknowledged writes, to find in etcd's history.
    acks: Mutex<Vec<(String, u64, Option<String>)>>,
    lists: Mutex<Vec<(u64, State)>>,
    watchers: Vec<Watcher>,
    /// Writers hold it shared per write; a check holds it alone, so that in memory
    /// every write up to the newest answer has been answered.
    writing: tokio::sync::RwLock<()>,
    counters: Counters,
    violations: Mutex<Vec<String>>,
    stopping: AtomicBool,
    server_pid: AtomicU32,
}

impl Soak {
    fn violation(&self, what: String) {
        bump(&self.counters.violations);
        let mut shown = self.violations.lock().unwrap();
        if shown.len() < SHOWN {
            eprintln!("violation: {what}");
            shown.push(what);
        }
    }

    fn stopped(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// The revision of what `name` holds now, by a consistent read (retried while the
    /// server is down); `None` for absent.
    async fn current(&self, name: &str) -> Option<u64> {
        loop {
            match self.pods.get_opt(name).await {
                Ok(pod) => return pod.as_ref().and_then(revision_of),
                Err(_) if !self.stopped() => tokio::time::sleep(cluster::POLL).await,
                Err(_) => return None,
            }
        }
    }

    fn acknowledged(&self, key: &str, revision: u64, value: Option<String>) {
        bump(&self.counters.writes);
        self.newest_ack.fetch_max(revision, Ordering::Relaxed);
        match self.storage {
            Storage::Memory => {
                if let Err(why) = self.truth.lock().unwrap().record(key, revision, value) {
                    self.violation(format!("two answers for one write: {why}"));
                }
            }
            Storage::Etcd => self.acks.lock().unwrap().push((key.to_owned(), revision, value)),
        }
    }
}

/// The annotation a soaked pod holds its value in.
const VALUE: &str = "soak.watchcache.dev/value";

fn revision_of(pod: &Pod) -> Option<u64> {
    pod.metadata.resource_version.as_deref()?.parse().ok()
}

fn value_of(pod: &Pod) -> Option<String> {
    pod.metadata.annotations.as_ref()?.get(VALUE).cloned()
}

/// A soaked object: a pod (whose delete answers with its last state and the deleting
/// revision, as Kubernetes answers it, which the truth needs), never scheduled.
fn pod(name: &str, value: &str, precondition: Option<u64>) -> Pod {
    let parity = if is_even(value) { "even" } else { "odd" };
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([("parity".to_owned(), parity.to_owned())])),
            annotations: Some(BTreeMap::from([(VALUE.to_owned(), value.to_owned())])),
            resource_version: precondition.map(|revision| revision.to_string()),
            ..ObjectMeta::default()
        },
        ..Pod::default()
    }
}

/// A writer's next write to one of its keys.
#[derive(Debug, Clone, Copy)]
enum Write {
    Create,
    Replace { precondition: Option<u64> },
    Delete { precondition: Option<u64> },
}

enum Outcome {
    /// Landed at this revision, leaving this value.
    Landed(u64, Option<String>),
    Refused,
    Unanswered(String),
}

async fn perform(pods: &Api<Pod>, name: &str, value: &str, write: Write) -> Outcome {
    let conflict = |error: &kube::Error| matches!(error, kube::Error::Api(status) if status.code == 409);
    let post = PostParams::default();
    let answer = async {
        match write {
            Write::Create => pods.create(&post, &pod(name, value, None)).await.map(Some),
            Write::Replace { precondition } => {
                pods.replace(name, &post, &pod(name, value, precondition)).await.map(Some)
            }
            Write::Delete { precondition } => {
                let preconditions = precondition.map(|revision| Preconditions {
                    resource_version: Some(revision.to_string()),
                    uid: None,
                });
                let params = DeleteParams { preconditions, ..DeleteParams::default() };
                pods.delete(name, &params).await.map(|deleted| deleted.left())
            }
        }
    };
    match tokio::time::timeout(WRITE_PATIENCE, answer).await {
        Err(_) => Outcome::Unanswered("no answer in time".into()),
        Ok(Err(error)) if conflict(&error) => Outcome::Refused,
        Ok(Err(error)) => Outcome::Unanswered(error.to_string()),
        Ok(Ok(Some(pod))) => match revision_of(&pod) {
            Some(revision) => {
                let left = if matches!(write, Write::Delete { .. }) { None } else { value_of(&pod) };
                Outcome::Landed(revision, left)
            }
            None => Outcome::Unanswered("an answer without a resourceVersion".into()),
        },
        Ok(Ok(None)) => Outcome::Unanswered("a delete answered without the object".into()),
    }
}

async fn writer(soak: Arc<Soak>, id: usize, keys: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    // What each key holds, as far as this writer (its only writer) knows.
    let mut known: Vec<Option<u64>> = vec![None; keys];
    // Until when an unanswered write to a key may still land (on etcd: a transaction
    // the server sent before it was killed, or before the client gave up).
    let mut uncertain: Vec<Option<Instant>> = vec![None; keys];
    let mut counter = 0u64;
    while !soak.stopped() {
        let key = rng.gen_range(0..keys);
        let name = format!("w{id}-k{key}");
        counter += 1;
        let value = format!("w{id}-{counter}");
        let (write, stale) = match known[key] {
            None => (Write::Create, false),
            Some(revision) => match rng.gen_range(0..20) {
                0..=8 => (Write::Replace { precondition: Some(revision) }, false),
                9..=12 => (Write::Replace { precondition: None }, false),
                13 => (Write::Replace { precondition: Some(revision + 1_000_000) }, true),
                14 => (Write::Delete { precondition: Some(revision + 1_000_000) }, true),
                15..=17 => (Write::Delete { precondition: Some(revision) }, false),
                _ => (Write::Delete { precondition: None }, false),
            },
        };
        let outcome = {
            let _writing = soak.writing.read().await;
            let outcome = perform(&soak.pods, &name, &value, write).await;
            if let Outcome::Landed(revision, left) = &outcome {
                soak.acknowledged(&name, *revision, left.clone());
            }
            outcome
        };
        match outcome {
            Outcome::Landed(revision, left) => {
                if stale {
                    soak.violation(format!(
                        "{write:?} of {name} with a stale precondition landed at {revision}"
                    ));
                }
                known[key] = left.map(|_| revision);
            }
            Outcome::Refused if stale => bump(&soak.counters.refused_stale),
            Outcome::Refused => {
                if uncertain[key].is_none_or(|until| Instant::now() > until) {
                    let history = soak.truth.lock().unwrap().recent(&name, 3);
                    soak.violation(format!(
                        "{write:?} of {name} = {value} refused with 409 (its only writer; it last knew \
                         revision {:?}; the truth's last writes to it: {history:?})",
                        known[key]
                    ));
                }
                known[key] = soak.current(&name).await;
            }
            Outcome::Unanswered(why) => {
                bump(&soak.counters.unanswered);
                if soak.storage == Storage::Memory && !soak.stopped() {
                    soak.violation(format!("{write:?} of {name} unanswered by a server never killed: {why}"));
                }
                uncertain[key] = Some(Instant::now() + LATE_LANDING);
                // Whether it landed is etcd's to say (the truth has it either way); what
                // the key holds now is the server's.
                known[key] = soak.current(&name).await;
            }
        }
    }
}

/// A complete list in pages of 7, every page at the first page's revision.
async fn list_in_pages(soak: &Soak, selection: Selection) -> Result<(u64, State), String> {
    let mut params = ListParams::default().limit(7);
    if let Some(labels) = selection.label_selector() {
        params = params.labels(labels);
    }
    let mut items = State::new();
    let mut revision = None;
    loop {
        let page = soak.pods.list(&params).await.map_err(|error| error.to_string())?;
        let at: u64 =
            page.metadata.resource_version.as_deref().and_then(|rv| rv.parse().ok()).ok_or("no revision")?;
        if *revision.get_or_insert(at) != at {
            soak.violation(format!("a page at {at} continues a list at {revision:?}"));
        }
        for pod in &page.items {
            if let (Some(name), Some(value)) = (pod.metadata.name.clone(), value_of(pod)) {
                items.insert(name, value);
            }
        }
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok((at, items)),
        }
    }
}

async fn lister(soak: Arc<Soak>) {
    while !soak.stopped() {
        match list_in_pages(&soak, Selection::All).await {
            Ok(list) => soak.lists.lock().unwrap().push(list),
            Err(_) => tokio::time::sleep(cluster::POLL).await,
        }
    }
}

fn seen_of(event: WatchEvent<Pod>) -> Result<Option<Seen>, Box<kube::core::Status>> {
    let object = |pod: &Pod| Some((pod.metadata.name.clone()?, revision_of(pod)?, value_of(pod)?));
    Ok(match event {
        WatchEvent::Added(pod) => {
            object(&pod).map(|(key, revision, value)| Seen::Added { key, revision, value })
        }
        WatchEvent::Modified(pod) => {
            object(&pod).map(|(key, revision, value)| Seen::Modified { key, revision, value })
        }
        WatchEvent::Deleted(pod) => object(&pod).map(|(key, revision, _)| Seen::Deleted { key, revision }),
        WatchEvent::Bookmark(bookmark) => {
            bookmark.metadata.resource_version.parse().ok().map(|revision| Seen::Bookmark { revision })
        }
        WatchEvent::Error(status) => return Err(status),
    })
}

async fn watch(soak: Arc<Soak>, index: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let watcher = &soak.watchers[index];
    let record = |seen: Seen| watcher.seen.lock().unwrap().push_back(seen);
    let mut resume: Option<u64> = None;
    while !soak.stopped() {
        let from = match resume {
            Some(revision) => revision,
            None => match list_in_pages(&soak, watcher.selection).await {
                // Nothing written yet: a watch "from 0" would mean "from any state", a
                // snapshot in key order rather than history in revision order.
                Ok((0, _)) => {
                    tokio::time::sleep(cluster::POLL).await;
                    continue;
                }
                Ok((revision, items)) => {
                    record(Seen::Listed { revision, items });
                    revision
                }
                Err(_) => {
                    tokio::time::sleep(cluster::POLL).await;
                    continue;
                }
            },
        };
        resume = Some(from);
        let mut params = WatchParams::default().timeout(60);
        if let Some(labels) = watcher.selection.label_selector() {
            params = params.labels(labels);
        }
        let Ok(stream) = soak.pods.watch(&params, &from.to_string()).await else {
            tokio::time::sleep(cluster::POLL).await;
            continue;
        };
        bump(&soak.counters.watches);
        let mut stream = std::pin::pin!(stream);
        let mut ending = tokio::time::interval(Duration::from_millis(200));
        loop {
            let next = tokio::select! {
                next = stream.next() => next,
                _ = ending.tick() => if soak.stopped() { return } else { continue },
            };
            let Some(Ok(event)) = next else { break };
            match seen_of(event) {
                Ok(Some(seen)) => {
                    if !matches!(seen, Seen::Bookmark { .. }) {
                        bump(&soak.counters.events);
                    }
                    resume = Some(seen.revision());
                    record(seen);
                }
                Ok(None) => soak.violation("a watch event without a name, revision or value".into()),
                Err(status) if status.code == 410 => {
                    bump(&soak.counters.expired);
                    resume = None;
                    break;
                }
                Err(status) => {
                    soak.violation(format!("a watch error other than 410: {status:?}"));
                    resume = None;
                    break;
                }
            }
            match rng.gen_range(0..1000) {
                0 => {
                    // Stops reading for a while, as a client under load does.
                    bump(&soak.counters.stalls);
                    tokio::time::sleep(Duration::from_millis(rng.gen_range(500..3000))).await;
                }
                1 | 2 => {
                    bump(&soak.counters.disconnects);
                    break;
                }
                _ => {}
            }
        }
    }
}

/// Opens `count` watches at once and closes them.
async fn churn(soak: &Soak, count: usize) {
    let params = WatchParams::default().timeout(30);
    let opened = futures::future::join_all((0..count).map(|_| soak.pods.watch(&params, "0"))).await;
    let failed = opened.iter().filter(|opened| opened.is_err()).count();
    soak.counters.churned.fetch_add((count - failed) as u64, Ordering::Relaxed);
    if failed > 0 && soak.storage == Storage::Memory {
        soak.violation(format!("{failed} of {count} churned watches did not open"));
    }
}

/// Checks everything seen up to the newest acknowledged write against the truth.
async fn check(soak: &Soak, checks: &mut [StreamCheck]) {
    let newest = {
        // No write in flight: every write up to the newest answer has been answered.
        let _alone = soak.writing.write().await;
        soak.newest_ack.load(Ordering::Relaxed)
    };
    if soak.storage == Storage::Etcd {
        // etcd delivers its history in order: once its watch has the newest answered
        // write, it has every write before it, answered or not.
        let waited = Instant::now();
        while soak.truth.lock().unwrap().revision < newest {
            if waited.elapsed() > Duration::from_secs(30) {
                let reached = soak.truth.lock().unwrap().revision;
                return soak.violation(format!(
                    "etcd's own watch never reached acknowledged revision {newest} (it reached {reached})"
                ));
            }
            tokio::time::sleep(cluster::POLL).await;
        }
    }
    let truth = soak.truth.lock().unwrap();
    if soak.storage == Storage::Etcd {
        let mut acks = soak.acks.lock().unwrap();
        for (key, revision, value) in acks.iter().filter(|(_, revision, _)| *revision <= newest) {
            if !truth.has(key, *revision, value.as_deref()) {
                soak.violation(format!(
                    "acknowledged {key} = {value:?} at {revision} is not in etcd's history"
                ));
            }
        }
        acks.retain(|(_, revision, _)| *revision > newest);
    }
    let mut lists = soak.lists.lock().unwrap();
    for (revision, items) in lists.iter().filter(|(revision, _)| *revision <= newest) {
        bump(&soak.counters.lists);
        if *items != truth.state_at(*revision, Selection::All) {
            soak.violation(format!("a paged list at {revision} is not the state at {revision}"));
        }
    }
    lists.retain(|(revision, _)| *revision > newest);
    drop(lists);
    for (watcher, check) in soak.watchers.iter().zip(checks.iter_mut()) {
        let mut seen = watcher.seen.lock().unwrap();
        let before = check.boundaries;
        while seen.front().is_some_and(|entry| entry.revision() <= newest) {
            let entry = seen.pop_front().expect("a front entry");
            let revision = entry.revision();
            if let Err(why) = check.apply(&truth, entry) {
                soak.violation(why);
                // One violation reported once: the check goes on from the truth there.
                check.resync(&truth, revision);
            }
        }
        soak.counters
            .boundaries
            .fetch_add(check.boundaries - before.min(check.boundaries), Ordering::Relaxed);
    }
}

/// etcd's own history of the soak's keys, read beside the server: the truth on etcd.
/// It follows until aborted, which the soak does after its final check: that check waits
/// for this history to reach the last acknowledged write.
async fn follow_etcd(soak: Arc<Soak>, endpoints: Vec<String>) {
    use etcd_client::{EventType, WatchOptions};
    let prefix = format!("/registry/pods/{NAMESPACE}/");
    loop {
        let Ok(mut client) = etcd_client::Client::connect(&endpoints, None).await else {
            tokio::time::sleep(cluster::POLL).await;
            continue;
        };
        let from = soak.truth.lock().unwrap().revision + 1;
        let options = WatchOptions::new().with_prefix().with_start_revision(from as i64);
        let Ok(mut stream) = client.watch(prefix.as_str(), Some(options)).await else {
            tokio::time::sleep(cluster::POLL).await;
            continue;
        };
        while let Ok(Some(response)) = stream.message().await {
            // A cancelled watch sends nothing more on a stream that stays open: follow
            // again (a compaction past what the soak has read loses the truth: say so).
            if response.canceled() {
                if response.compact_revision() >= from as i64 {
                    soak.violation(format!(
                        "etcd compacted at {} the history the soak follows from {from}",
                        response.compact_revision()
                    ));
                }
                break;
            }
            let mut truth = soak.truth.lock().unwrap();
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let Some(name) = kv.key_str().ok().and_then(|key| key.strip_prefix(&prefix)) else {
                    continue;
                };
                let value = match event.event_type() {
                    EventType::Delete => None,
                    EventType::Put => {
                        serde_json::from_slice::<serde_json::Value>(kv.value()).ok().and_then(|object| {
                            object["metadata"]["annotations"][VALUE].as_str().map(str::to_owned)
                        })
                    }
                };
                if let Err(why) = truth.record(name, kv.mod_revision() as u64, value) {
                    soak.violation(format!("etcd's history contradicts itself: {why}"));
                }
            }
        }
    }
}

/// The faults, in turn, one every `every`, until `stop` is notified. A fault under way
/// is finished first (a killed member is restarted), and the processes are handed back:
/// the final check needs the whole cluster, for etcd's own history to reach the last
/// acknowledged write.
async fn inject_faults(
    soak: Arc<Soak>,
    mut server: cluster::Server,
    mut etcd: Option<cluster::Etcd>,
    (every, churn_size): (Duration, usize),
    stop: Arc<tokio::sync::Notify>,
) -> (cluster::Server, Option<cluster::Etcd>) {
    let mut turn = 0usize;
    let mut compacted = 0u64;
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            () = stop.notified() => return (server, etcd),
            _ = tick.tick() => {}
        }
        let faults = if etcd.is_some() { 4 } else { 1 };
        match turn % faults {
            0 => churn(&soak, churn_size).await,
            1 => {
                let Some(etcd) = &etcd else { continue };
                // Compacts all but the last 20 revisions: old resumes and tokens get 410.
                let target = soak.truth.lock().unwrap().revision.saturating_sub(20);
                if target > compacted {
                    let compacting = async {
                        etcd_client::Client::connect(etcd.endpoints(), None)
                            .await?
                            .compact(target as i64, None)
                            .await
                    };
                    if compacting.await.is_ok() {
                        compacted = target;
                        bump(&soak.counters.compactions);
                    }
                }
            }
            2 => {
                if server.restart().is_ok() {
                    soak.server_pid.store(server.pid().unwrap_or(0), Ordering::Relaxed);
                    bump(&soak.counters.server_kills);
                }
            }
            _ => {
                let Some(etcd) = &mut etcd else { continue };
                let member = (turn / faults) % 3;
                etcd.kill(member);
                bump(&soak.counters.member_kills);
                tokio::time::sleep(Duration::from_secs(2)).await;
                if let Err(error) = etcd.restart(member) {
                    soak.violation(format!("cannot restart etcd member {member}: {error}"));
                }
            }
        }
        turn += 1;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let flags = Flags::parse();
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("watchcache-soak: cannot raise the open file limit: {error}");
    }
    match run(flags).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("watchcache-soak: {error}");
            ExitCode::from(2)
        }
    }
}

async fn run(flags: Flags) -> Result<bool, Box<dyn std::error::Error>> {
    let server_bin = match flags.server_bin {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("watchcache-server"),
    };
    let dir = tempfile::tempdir()?;
    let etcd = match flags.storage {
        Storage::Memory => None,
        Storage::Etcd => {
            let binary = flags
                .etcd_bin
                .or_else(|| std::env::var_os("ETCD").map(PathBuf::from))
                .unwrap_or("etcd".into());
            Some(cluster::Etcd::start(&binary, dir.path())?)
        }
    };
    let endpoints = etcd.as_ref().map(cluster::Etcd::endpoints);
    let server = cluster::Server::start(&server_bin, endpoints.as_deref())?;
    let mut config = kube::Config::new(server.url().parse()?);
    // kube-rs retries a 503 or 504 by itself: a create retried after one that landed
    // would come back 409. The soak sees every answer, and decides.
    config.default_retry = false;
    let client = kube::Client::try_from(config)?;
    let pods: Api<Pod> = Api::namespaced(client, NAMESPACE);
    let started = Instant::now();
    while pods.list(&ListParams::default().limit(1)).await.is_err() {
        if started.elapsed() > Duration::from_secs(60) {
            return Err("the server did not answer within a minute of starting".into());
        }
        tokio::time::sleep(cluster::POLL).await;
    }
    let watchers = (0..flags.watchers)
        .map(|index| Watcher {
            selection: if index % 2 == 0 { Selection::All } else { Selection::Even },
            seen: Mutex::new(VecDeque::new()),
        })
        .collect();
    let soak = Arc::new(Soak {
        storage: flags.storage,
        pods,
        truth: Mutex::new(Truth::default()),
        newest_ack: AtomicU64::new(0),
        acks: Mutex::new(Vec::new()),
        lists: Mutex::new(Vec::new()),
        watchers,
        writing: tokio::sync::RwLock::new(()),
        counters: Counters::default(),
        violations: Mutex::new(Vec::new()),
        stopping: AtomicBool::new(false),
        server_pid: AtomicU32::new(server.pid().unwrap_or(0)),
    });
    let follower = endpoints.map(|endpoints| tokio::spawn(follow_etcd(soak.clone(), endpoints)));
    let mut tasks = Vec::new();
    for id in 0..flags.writers {
        tasks.push(tokio::spawn(writer(
            soak.clone(),
            id,
            flags.keys_per_writer,
            flags.seed * 1000 + id as u64,
        )));
    }
    for index in 0..flags.watchers {
        tasks.push(tokio::spawn(watch(soak.clone(), index, flags.seed * 2000 + index as u64)));
    }
    tasks.push(tokio::spawn(lister(soak.clone())));
    let stop_faults = Arc::new(tokio::sync::Notify::new());
    let faults = tokio::spawn(inject_faults(
        soak.clone(),
        server,
        etcd,
        (flags.fault_every, flags.churn),
        stop_faults.clone(),
    ));

    let mut checks: Vec<StreamCheck> =
        soak.watchers.iter().map(|watcher| StreamCheck::new(watcher.selection)).collect();
    let mut check_tick = tokio::time::interval(flags.check_every);
    let mut report_tick = tokio::time::interval(flags.report_every);
    // Sampled far more often than reported, so that each quarter's floor is seen between
    // churn bursts, which hold hundreds of connections for a moment.
    let mut sample_tick = tokio::time::interval(USAGE_SAMPLE_EVERY);
    let mut samples: Vec<(Duration, u64, usize)> = Vec::new();
    let mut usage = None;
    let deadline = started + flags.duration;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            // Stopped early: the processes it started go with it, and what was seen so
            // far is still checked.
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            _ = check_tick.tick() => check(&soak, &mut checks).await,
            _ = sample_tick.tick() => {
                usage = cluster::usage(soak.server_pid.load(Ordering::Relaxed));
                if let Some((rss, fds)) = usage {
                    samples.push((started.elapsed(), rss, fds));
                }
            }
            _ = report_tick.tick() => report(&soak, started.elapsed(), usage),
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    soak.stopping.store(true, Ordering::Relaxed);
    // A stored permit: the injector stops at its next wait even if it is mid-fault now.
    stop_faults.notify_one();
    let processes = tokio::time::timeout(FAULT_PATIENCE, faults)
        .await
        .map_err(|_| "the fault injector did not stop")??;
    for task in tasks {
        let _ = tokio::time::timeout(WRITE_PATIENCE, task).await;
    }
    // The processes and etcd's own history stay up for the final check.
    check(&soak, &mut checks).await;
    if let Some(follower) = follower {
        follower.abort();
    }
    drop(processes);
    report(&soak, started.elapsed(), None);

    // Growth: the last quarter's floor against the second quarter's. What leaks raises
    // the floor; a burst of connections or a garbage peak does not.
    let quarter = |from: f64, to: f64| -> Vec<(u64, usize)> {
        samples
            .iter()
            .filter(|(at, ..)| {
                let at = at.as_secs_f64() / flags.duration.as_secs_f64();
                (from..to).contains(&at)
            })
            .map(|(_, rss, fds)| (*rss, *fds))
            .collect()
    };
    let (early, late) = (quarter(0.25, 0.5), quarter(0.75, 1.01));
    if !early.is_empty() && !late.is_empty() {
        let rss = |samples: &[(u64, usize)]| samples.iter().map(|(rss, _)| *rss).min().unwrap_or(0);
        let fds = |samples: &[(u64, usize)]| samples.iter().map(|(_, fds)| *fds).min().unwrap_or(0);
        let (rss_early, rss_late, fds_early, fds_late) = (rss(&early), rss(&late), fds(&early), fds(&late));
        println!(
            "growth: rss {} MiB -> {} MiB, open files {fds_early} -> {fds_late}",
            rss_early >> 20,
            rss_late >> 20
        );
        if rss_late > 2 * rss_early + (64 << 20) {
            soak.violation(format!("server memory grew from {rss_early} to {rss_late} bytes"));
        }
        if fds_late > 2 * fds_early + 64 {
            soak.violation(format!("server open files grew from {fds_early} to {fds_late}"));
        }
    }
    let violations = read(&soak.counters.violations);
    println!("violations: {violations}");
    Ok(violations == 0)
}

fn report(soak: &Soak, elapsed: Duration, usage: Option<(u64, usize)>) {
    let counters = &soak.counters;
    let usage = usage.map_or_else(String::new, |(rss, fds)| format!(" rss={}MiB fds={fds}", rss >> 20));
    println!(
        "t={}s writes={} stale_refused={} unanswered={} events={} boundaries={} lists={} watches={} expired={} \
         stalls={} disconnects={} churned={} server_kills={} member_kills={} compactions={} violations={}{usage}",
        elapsed.as_secs(),
        read(&counters.writes),
        read(&counters.refused_stale),
        read(&counters.unanswered),
        read(&counters.events),
        read(&counters.boundaries),
        read(&counters.lists),
        read(&counters.watches),
        read(&counters.expired),
        read(&counters.stalls),
        read(&counters.disconnects),
        read(&counters.churned),
        read(&counters.server_kills),
        read(&counters.member_kills),
        read(&counters.compactions),
        read(&counters.violations),
    );
}
