//! The run against a server over HTTP (`--target`): producers replace pods or config
//! maps (`--resource`) with `PUT` on keep-alive connections (one per producer thread), and one thread holds every watch
//! connection with mio — no async runtime in the client, so the client costs little next
//! to the server — parsing the chunked JSON lines (or with `--wire protobuf`, the
//! length-prefixed protobuf frames) incrementally as they arrive.
//!
//! Each object carries its schedule in annotations (`loadgen/intended`, `loadgen/sent`:
//! nanoseconds after the run's start), so latency is measured from the intended send
//! time exactly as in the embedded run. A share of the watches (`--indexed-share`)
//! select one node's objects: pods by `spec.nodeName=node-N`, which `watchcache-server`
//! serves from its trigger index, config maps by the label `loadgen/node=node-N`.

use crate::config::{Config, Resource, Wire};
use crate::report::{histogram, spectrum, Latencies, Percentiles, Report, ServerFigures};
use crate::timing::{node_of, produce, Consumed};
use crate::usage::Usage;
use crate::wire::take_events;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NAMESPACE: &str = "loadgen";

/// How long the watches may take, once the producers are done, to receive what is due.
const DRAIN: Duration = Duration::from_secs(10);

/// Runs the load described by `config` against the server at `target`
/// (`http://HOST:PORT`); `progress` is called about once a second.
///
/// # Errors
/// The target cannot be reached or answers a setup request with an error.
pub fn run_network(config: &Config, target: &str, mut progress: impl FnMut(f64)) -> Result<Report, String> {
    let base = target.trim_end_matches('/').to_owned();
    let address = resolve(&base)?;
    let agent = ureq::AgentBuilder::new().build();
    let resource = config.resource;
    let collection = format!("{base}/api/v1/namespaces/{NAMESPACE}/{}", resource.plural());
    // A Kubernetes API server writes only into a namespace that exists; a server without
    // namespaces answers 404 or 405, and a namespace left from an earlier run 409.
    let namespace =
        serde_json::json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": NAMESPACE } });
    match agent.post(&format!("{base}/api/v1/namespaces")).send_json(namespace) {
        Ok(_) | Err(ureq::Error::Status(404 | 405 | 409, _)) => {}
        Err(error) => return Err(format!("cannot create namespace {NAMESPACE} at {target}: {error}")),
    }
    // Every key exists before the clock starts: the run measures updates.
    for id in 0..config.producers {
        for key in 0..config.keys {
            let body = object(config, id, key, node_of(config, id, key), 0, 0);
            match agent.post(&collection).set("content-type", "application/json").send_string(&body) {
                Ok(_) | Err(ureq::Error::Status(409, _)) => {}
                Err(error) => return Err(format!("cannot create the run's objects at {target}: {error}")),
            }
        }
    }
    let listed: serde_json::Value = agent
        .get(&format!("{collection}?limit=1"))
        .call()
        .map_err(|error| format!("cannot list at {target}: {error}"))?
        .into_json()
        .map_err(|error| format!("cannot read the list from {target}: {error}"))?;
    let from = listed["metadata"]["resourceVersion"].as_str().unwrap_or("0").to_owned();
    let server_before = ServerSample::take(&agent, &base, config);

    let (indexed, _) = config.split();
    let watchers = config.connections.unwrap_or(config.watchers);
    let mut poll = Poll::new().map_err(|error| format!("cannot poll: {error}"))?;
    let mut connections: Vec<Connection> = (0..watchers)
        .map(|index| {
            let node = (index < indexed).then(|| index % config.trigger_cardinality);
            let selector = node
                .map(|node| match resource {
                    Resource::Pods => format!("&fieldSelector=spec.nodeName%3Dnode-{node}"),
                    Resource::Configmaps => format!("&labelSelector=loadgen%2Fnode%3Dnode-{node}"),
                })
                .unwrap_or_default();
            let path = format!(
                "/api/v1/namespaces/{NAMESPACE}/{}?watch=true&resourceVersion={from}{selector}",
                resource.plural()
            );
            Connection::open(&poll, Token(index as usize), address, (&path, config.wire), node)
        })
        .collect::<Result<_, _>>()?;
    let mut events = Events::with_capacity(1024);
    let start = Instant::now();
    // The watches are established (their response heads read) before anything is sent.
    while connections.iter().any(|connection| connection.stage == Stage::Head) {
        if start.elapsed() > DRAIN {
            return Err(format!("{target} did not answer every watch request"));
        }
        step(&mut poll, &mut events, &mut connections, start)?;
    }

    let usage_before = Usage::now();
    let start = Instant::now();
    let per_node: Arc<Vec<AtomicU64>> =
        Arc::new((0..config.trigger_cardinality).map(|_| AtomicU64::new(0)).collect());
    let running = Arc::new(AtomicUsize::new(config.producers as usize));
    let producers: Vec<_> = (0..config.producers)
        .map(|id| {
            let (config, per_node, running, collection) =
                (config.clone(), per_node.clone(), running.clone(), collection.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().build();
                let sent = produce(&config, id, start, &per_node, |change| {
                    let body = object(
                        &config,
                        id,
                        change.key,
                        change.node,
                        change.intended_nanos,
                        change.sent_nanos,
                    );
                    let url = format!("{collection}/{}", name(id, change.key));
                    agent.put(&url).set("content-type", "application/json").send_string(&body).is_ok()
                });
                running.fetch_sub(1, Ordering::Release);
                sent
            })
        })
        .collect();

    let duration = Duration::from_secs_f64(config.duration);
    let mut last_progress = Instant::now();
    let mut drain_deadline = None;
    loop {
        step(&mut poll, &mut events, &mut connections, start)?;
        if last_progress.elapsed() >= Duration::from_secs(1) {
            progress((start.elapsed().as_secs_f64() / duration.as_secs_f64()).min(1.0));
            last_progress = Instant::now();
        }
        if running.load(Ordering::Acquire) > 0 {
            continue;
        }
        let deadline = *drain_deadline.get_or_insert_with(|| Instant::now() + DRAIN);
        let total = per_node.iter().map(|count| count.load(Ordering::Relaxed)).sum::<u64>();
        let all_in = connections.iter().all(|connection| {
            connection.consumed.deliveries >= expected(connection, &per_node, total)
                || connection.stage == Stage::Ended
        });
        if all_in || Instant::now() >= deadline {
            break;
        }
    }
    progress(1.0);
    let elapsed = start.elapsed();
    let usage = Usage::now();
    let server_after = ServerSample::take(&agent, &base, config);

    let mut send_lag = histogram();
    let (mut events_sent, mut producer_cpu) = (0, Duration::ZERO);
    for producer in producers {
        let sent = producer.join().map_err(|_| "a producer thread panicked".to_owned())?;
        events_sent += sent.events;
        producer_cpu += sent.cpu;
        send_lag.add(&sent.lag).expect("histograms of one shape");
    }
    let mut latencies = Latencies::new();
    let mut intended = histogram();
    let (mut deliveries, mut expiries, mut expected_deliveries) = (0, 0, 0);
    for connection in &connections {
        deliveries += connection.consumed.deliveries;
        expiries += connection.consumed.expiries;
        expected_deliveries += expected(connection, &per_node, events_sent);
        latencies.add(&connection.consumed.latency, false);
        intended.add(&connection.consumed.intended_latency).expect("histograms of one shape");
    }
    Ok(Report {
        config: config.clone(),
        events: events_sent,
        elapsed,
        deliveries,
        expected_deliveries,
        forced_closes: 0,
        parks: 0,
        expiries,
        latency_micros: Percentiles::of(&latencies.all),
        healthy_latency_micros: Percentiles::of(&latencies.healthy),
        intended_latency_micros: Percentiles::of(&intended),
        intended_latency_spectrum: spectrum(&intended),
        send_lag_micros: Percentiles::of(&send_lag),
        cpu_seconds: usage.cpu.saturating_sub(usage_before.cpu).as_secs_f64(),
        producer_cpu_seconds: producer_cpu.as_secs_f64(),
        peak_rss_bytes: usage.peak_rss_bytes,
        window_events: 0,
        ring: None,
        server: Some(server_after.since(&server_before)),
    })
}

/// The deliveries `connection` is due: its node's changes, or every change.
fn expected(connection: &Connection, per_node: &[AtomicU64], total: u64) -> u64 {
    match connection.node {
        Some(node) => per_node[node as usize].load(Ordering::Relaxed),
        None => total,
    }
}

fn resolve(base: &str) -> Result<SocketAddr, String> {
    let authority =
        base.strip_prefix("http://").ok_or_else(|| format!("target {base:?} is not http://HOST:PORT"))?;
    authority
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .ok_or_else(|| format!("target {base:?}: cannot resolve {authority:?}"))
}

fn name(id: u64, key: u64) -> String {
    format!("p{id}-{key}")
}

/// A pod or config map of `node-{node}`, stamped with its schedule, with `object_size`
/// bytes of payload.
fn object(config: &Config, id: u64, key: u64, node: u64, intended_nanos: u64, sent_nanos: u64) -> String {
    let annotations = serde_json::json!({ "loadgen/intended": intended_nanos.to_string(), "loadgen/sent": sent_nanos.to_string() });
    let payload = "x".repeat(config.object_size);
    match config.resource {
        Resource::Pods => serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "name": name(id, key), "annotations": annotations },
            "spec": { "nodeName": format!("node-{node}") },
            "payload": payload,
        }),
        Resource::Configmaps => serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name(id, key),
                "annotations": annotations,
                "labels": { "loadgen/node": format!("node-{node}") },
            },
            "data": { "payload": payload },
        }),
    }
    .to_string()
}

/// The server's own figures, from `/metrics` and, given its pids, `/proc`.
#[derive(Debug, Clone, Copy, Default)]
struct ServerSample {
    encodes: u64,
    protobuf_encodes: u64,
    deliveries: u64,
    cpu_seconds: Option<f64>,
}

impl ServerSample {
    fn take(agent: &ureq::Agent, base: &str, config: &Config) -> Self {
        let text = agent
            .get(&format!("{base}/metrics"))
            .call()
            .ok()
            .and_then(|response| response.into_string().ok());
        let counter = |name: &str| -> u64 {
            let prefix = format!("{name}{{resource=\"{}\"}} ", config.resource.plural());
            text.as_deref()
                .and_then(|text| text.lines().find_map(|line| line.strip_prefix(&prefix)))
                .and_then(|value| value.trim().parse::<f64>().ok())
                .map_or(0, |value| value as u64)
        };
        Self {
            encodes: counter("watchcache_encodes_total"),
            protobuf_encodes: counter("watchcache_protobuf_encodes_total"),
            deliveries: counter("watchcache_deliveries_total"),
            // Every process or none: a sum that missed one would be wrong, not partial.
            cpu_seconds: (!config.server_pid.is_empty())
                .then(|| config.server_pid.iter().map(|&pid| process_cpu_seconds(pid)).sum::<Option<f64>>())
                .flatten(),
        }
    }

    fn since(&self, before: &Self) -> ServerFigures {
        ServerFigures {
            encodes: self.encodes.saturating_sub(before.encodes),
            protobuf_encodes: self.protobuf_encodes.saturating_sub(before.protobuf_encodes),
            deliveries: self.deliveries.saturating_sub(before.deliveries),
            cpu_seconds: self.cpu_seconds.zip(before.cpu_seconds).map(|(after, before)| after - before),
        }
    }
}

/// A process's CPU time (user + system) from `/proc/PID/stat`.
fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after its closing parenthesis don't.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let (user, system): (u64, u64) = (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
    // SAFETY: `sysconf` only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (user + system) as f64 / ticks as f64)
}

/// Reads every ready connection once.
fn step(
    poll: &mut Poll,
    events: &mut Events,
    connections: &mut [Connection],
    start: Instant,
) -> Result<(), String> {
    poll.poll(events, Some(Duration::from_millis(100))).map_err(|error| format!("poll failed: {error}"))?;
    for event in events.iter() {
        let connection = &mut connections[event.token().0];
        if event.is_writable() {
            connection.write(poll)?;
        }
        if event.is_readable() {
            connection.read(start)?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the response head.
    Head,
    /// Reading chunks.
    Body,
    /// The response ended (or the connection closed).
    Ended,
}

/// One watch connection and its incremental parser.
struct Connection {
    stream: TcpStream,
    token: Token,
    request: Vec<u8>,
    written: usize,
    /// Bytes received and not yet parsed.
    input: Vec<u8>,
    /// Chunk data not yet making a whole event.
    body: Vec<u8>,
    wire: Wire,
    stage: Stage,
    node: Option<u64>,
    consumed: Consumed,
}

impl Connection {
    fn open(
        poll: &Poll,
        token: Token,
        address: SocketAddr,
        (path, wire): (&str, Wire),
        node: Option<u64>,
    ) -> Result<Self, String> {
        let mut stream =
            TcpStream::connect(address).map_err(|error| format!("cannot connect to {address}: {error}"))?;
        let _ = stream.set_nodelay(true);
        poll.registry()
            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            .map_err(|error| format!("cannot register a connection: {error}"))?;
        let accept = match wire {
            Wire::Json => "application/json",
            Wire::Protobuf => "application/vnd.kubernetes.protobuf",
        };
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: {accept}\r\n\r\n").into_bytes();
        Ok(Self {
            stream,
            token,
            request,
            written: 0,
            input: Vec::new(),
            body: Vec::new(),
            wire,
            stage: Stage::Head,
            node,
            consumed: Consumed::new(false),
        })
    }

    fn write(&mut self, poll: &Poll) -> Result<(), String> {
        while self.written < self.request.len() {
            match self.stream.write(&self.request[self.written..]) {
                Ok(written) => self.written += written,
                Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(()),
                // Not connected yet: writable again once it is.
                Err(error) if error.kind() == ErrorKind::NotConnected => return Ok(()),
                Err(error) => return Err(format!("cannot send a watch request: {error}")),
            }
        }
        poll.registry()
            .reregister(&mut self.stream, self.token, Interest::READABLE)
            .map_err(|error| format!("cannot reregister a connection: {error}"))
    }

    fn read(&mut self, start: Instant) -> Result<(), String> {
        let mut buffer = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut buffer) {
                Ok(0) => {
                    self.stage = Stage::Ended;
                    return Ok(());
                }
                Ok(read) => self.input.extend_from_slice(&buffer[..read]),
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => return Err(format!("a watch connection failed: {error}")),
            }
        }
        self.parse(start)
    }

    fn parse(&mut self, start: Instant) -> Result<(), String> {
        if self.stage == Stage::Head {
            let Some(end) = find(&self.input, b"\r\n\r\n") else { return Ok(()) };
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            response
                .parse(&self.input[..end + 4])
                .map_err(|error| format!("a bad response head: {error}"))?;
            if response.code != Some(200) {
                let body = String::from_utf8_lossy(&self.input[end + 4..]);
                return Err(format!("a watch was refused with {:?}: {body}", response.code));
            }
            self.input.drain(..end + 4);
            self.stage = Stage::Body;
        }
        // Chunks: a hex size line, the data, CRLF; a zero size ends the body.
        let mut at = 0;
        while self.stage == Stage::Body {
            let Some(size_end) = find(&self.input[at..], b"\r\n") else { break };
            let size_text = std::str::from_utf8(&self.input[at..at + size_end]).unwrap_or("");
            let size_text = size_text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| format!("a bad chunk size {size_text:?}"))?;
            let data = at + size_end + 2;
            if self.input.len() < data + size + 2 {
                break;
            }
            if size == 0 {
                self.stage = Stage::Ended;
            }
            self.body.extend_from_slice(&self.input[data..data + size]);
            at = data + size + 2;
        }
        self.input.drain(..at);
        let consumed = &mut self.consumed;
        take_events(self.wire, &mut self.body, |event| match event.kind.as_str() {
            "ADDED" | "MODIFIED" | "DELETED" => {
                if let (Some(intended), Some(sent)) =
                    (event.stamp("loadgen/intended"), event.stamp("loadgen/sent"))
                {
                    consumed.record(intended, sent, start);
                }
            }
            "ERROR" => consumed.expiries += 1,
            _ => {}
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}
