//! `kubectl`, unchanged, against the server: create from a file, get as JSON and by
//! label, a watch that prints the changes made while it runs, delete, `/metrics`, and
//! `describe` of a configmap and a secret with the events about them.
//!
//! Uses `$KUBECTL` if set, else `kubectl` on the `PATH` (`.ci/run` provides Debian's
//! `kubernetes-client`, kubectl 1.20).

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use support::Running;
use watchcache_server::Settings;

/// A failsafe for waits on kubectl's output: a hang fails the test instead of blocking.
const HANG: Duration = Duration::from_secs(60);

/// What `create -f` needs besides the file. kubectl before 1.27 validates a file against
/// the OpenAPI v2 document in its protobuf form, which a server built with the
/// `protobuf` feature serves (`cargo xtask test` builds it so); without it, validation
/// must be off.
const VALIDATION: &[&str] = if cfg!(feature = "protobuf") { &[] } else { &["--validate=false"] };

struct Kubectl {
    program: PathBuf,
    server: String,
    home: PathBuf,
}

impl Kubectl {
    fn new(server: &Running, home: &Path) -> Self {
        let program = std::env::var_os("KUBECTL").map_or_else(|| PathBuf::from("kubectl"), PathBuf::from);
        Self { program, server: server.url(), home: home.to_owned() }
    }

    /// Every kubectl here: `$KUBECTL` (or `kubectl`), and each `kubectl` and
    /// `kubectl.1.NN` on the `PATH` (the builds a current machine has beside its own),
    /// one per version.
    fn every_version(server: &Running, home: &Path) -> Vec<(String, Self)> {
        let first = Self::new(server, home).program;
        let on_path = std::env::var_os("PATH").into_iter().flat_map(|path| {
            std::env::split_paths(&path)
                .filter_map(|dir| std::fs::read_dir(dir).ok())
                .flatten()
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| {
                    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("");
                    name == "kubectl"
                        || name.strip_prefix("kubectl.1.").is_some_and(|minor| minor.parse::<u32>().is_ok())
                })
                .collect::<Vec<_>>()
        });
        let mut found: Vec<(String, Self)> = Vec::new();
        for program in std::iter::once(first).chain(on_path) {
            let Ok(output) = Command::new(&program).args(["version", "--client"]).output() else { continue };
            let version = String::from_utf8_lossy(&output.stdout).lines().next().unwrap_or("").to_owned();
            if output.status.success() && !found.iter().any(|(seen, _)| *seen == version) {
                found.push((version, Self { program, server: server.url(), home: home.to_owned() }));
            }
        }
        found
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.program);
        // No kubeconfig or cache of the user's: only the server under test.
        command
            .env("HOME", &self.home)
            .env("KUBECONFIG", self.home.join("kubeconfig"))
            .args(["--server", &self.server, "--cache-dir", self.home.join("cache").to_str().unwrap()])
            .args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        let output = self.command(args).output().unwrap_or_else(|error| {
            panic!(
                "cannot run {:?} ({error}): install Debian's kubernetes-client or set KUBECTL",
                self.program
            )
        });
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn stdout(&self, args: &[&str]) -> String {
        String::from_utf8(self.run(args).stdout).expect("utf-8 output")
    }

    /// Starts `kubectl args…` and returns it with a channel of its output lines.
    fn spawn(&self, args: &[&str]) -> (Background, mpsc::Receiver<String>) {
        let mut child =
            self.command(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("kubectl runs");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        (Background(child), received)
    }
}

/// A kubectl started in the background, killed when dropped: a failed test leaves no
/// `kubectl get --watch` behind.
struct Background(Child);

impl Background {
    /// Waits for it to exit by itself.
    fn wait(&mut self) -> std::process::ExitStatus {
        self.0.wait().expect("kubectl is waited for")
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The minor version in `kubectl version --client`'s first line: `v1.32.4` or
/// `Minor:"20"` (kubectl 1.20's form).
fn minor(version: &str) -> Option<u32> {
    let digits = |text: &str| text.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok();
    version
        .split_once("Minor:\"")
        .and_then(|(_, rest)| digits(rest))
        .or_else(|| version.split_once("v1.").and_then(|(_, rest)| digits(rest)))
}

/// A server on a runtime of its own, and a kubectl with a home of its own for it.
struct Session {
    runtime: tokio::runtime::Runtime,
    server: Running,
    kubectl: Kubectl,
}

impl Session {
    fn start(name: &str) -> Self {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let server = runtime.block_on(Running::start(Settings::default()));
        let kubectl = Kubectl::new(&server, &temp_dir(name));
        Self { runtime, server, kubectl }
    }

    fn stop(self) {
        self.runtime.block_on(self.server.stop());
        let _ = std::fs::remove_dir_all(&self.kubectl.home);
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("watchcache-kubectl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    std::fs::write(dir.join("kubeconfig"), "apiVersion: v1\nkind: Config\n").expect("an empty kubeconfig");
    dir
}

fn manifest(dir: &Path, name: &str, app: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels:\n    app: \"{app}\"\ndata:\n  greeting: hello\n"
    );
    std::fs::write(&path, yaml).expect("a manifest");
    path
}

#[test]
fn kubectl_creates_gets_watches_and_deletes() {
    let session = Session::start("session");
    let (kubectl, dir) = (&session.kubectl, session.kubectl.home.clone());

    for (name, app) in [("one", "x"), ("two", "y")] {
        let path = manifest(&dir, name, app);
        let created = kubectl.stdout(&[&["create", "-f", path.to_str().unwrap()], VALIDATION].concat());
        assert_eq!(created.trim(), format!("configmap/{name} created"));
    }

    let listed: serde_json::Value =
        serde_json::from_str(&kubectl.stdout(&["get", "configmaps", "-o", "json"]))
            .expect("json from kubectl");
    let names: Vec<&str> =
        listed["items"].as_array().unwrap().iter().map(|m| m["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["one", "two"]);
    assert_eq!(listed["items"][0]["data"]["greeting"], "hello");

    assert_eq!(kubectl.stdout(&["get", "configmaps", "-l", "app=x", "-o", "name"]).trim(), "configmap/one");
    let one: serde_json::Value =
        serde_json::from_str(&kubectl.stdout(&["get", "configmap", "one", "-o", "json"])).unwrap();
    assert_eq!(one["metadata"]["labels"]["app"], "x");

    // The table kubectl prints against Kubernetes, made by the server.
    let table = kubectl.stdout(&["get", "configmaps"]);
    let rows: Vec<Vec<&str>> = table.lines().map(|line| line.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "DATA", "AGE"], "{table}");
    assert_eq!(
        (rows[1][..2].to_vec(), rows[2][..2].to_vec()),
        (vec!["one", "1"], vec!["two", "1"]),
        "{table}"
    );

    // A watch: a header, the current objects, then the changes made meanwhile (kubectl
    // prints EVENT NAME DATA AGE, each event a table of one row).
    let (watch, lines) = kubectl.spawn(&["get", "configmaps", "--watch", "--output-watch-events"]);
    let expect = |wanted: &str| {
        let line = lines.recv_timeout(HANG).unwrap_or_else(|_| panic!("kubectl printed no {wanted:?}"));
        let columns: Vec<&str> = line.split_whitespace().take(2).collect();
        assert_eq!(columns.join(" "), wanted, "line {line:?}");
    };
    expect("EVENT NAME");
    expect("ADDED one");
    expect("ADDED two");
    kubectl.run(&["create", "configmap", "three", "--from-literal=greeting=hi"]);
    expect("ADDED three");
    // A patch (kubectl label sends a strategic merge patch).
    kubectl.run(&["label", "configmap", "three", "tier=front"]);
    expect("MODIFIED three");
    let tier = kubectl.stdout(&["get", "configmap", "three", "-o", "jsonpath={.metadata.labels.tier}"]);
    assert_eq!(tier, "front");
    assert_eq!(kubectl.stdout(&["delete", "configmap", "three"]).trim(), "configmap \"three\" deleted");
    expect("DELETED three");
    drop(watch);

    let missing = kubectl.command(&["get", "configmap", "three"]).output().unwrap();
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("not found"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    let metrics = kubectl.stdout(&["get", "--raw", "/metrics"]);
    assert!(metrics.contains(r#"watchcache_encodes_total{resource="configmaps"}"#), "{metrics}");
    assert!(metrics.contains("watchcache_deliveries_total"), "{metrics}");
    session.stop();
}

#[test]
fn kubectl_describes_configmaps_and_secrets_with_the_events_about_them_and_prints_tables() {
    let session = Session::start("describe");
    let (kubectl, dir) = (&session.kubectl, session.kubectl.home.clone());
    kubectl.run(&["create", "configmap", "web", "--from-literal=greeting=hi"]);
    kubectl.run(&["create", "configmap", "other", "--from-literal=greeting=hi"]);
    let uid = kubectl.stdout(&["get", "configmap", "web", "-o", "jsonpath={.metadata.uid}"]);
    // kubectl finds an object's events by `involvedObject` fields, the UID among them.
    for (name, about, reason) in [("web.1", "web", "Checked"), ("other.1", "other", "Elsewhere")] {
        let path = dir.join(format!("{name}.yaml"));
        let uid = if about == "web" { uid.as_str() } else { "another-uid" };
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Event\nmetadata:\n  name: {name}\ninvolvedObject:\n  kind: ConfigMap\n  \
                 namespace: default\n  name: {about}\n  uid: \"{uid}\"\nreason: {reason}\nmessage: looked at\n\
                 type: Normal\nsource:\n  component: tester\n"
            ),
        )
        .unwrap();
        kubectl.run(&[&["create", "-f", path.to_str().unwrap()], VALIDATION].concat());
    }
    let described = kubectl.stdout(&["describe", "configmap", "web"]);
    let events = described.split("Events:").nth(1).unwrap_or_else(|| panic!("no events in {described}"));
    assert!(events.contains("Checked") && events.contains("tester"), "{described}");
    assert!(!events.contains("Elsewhere"), "only the events about web: {described}");

    // A secret's type defaults to Opaque; its data is base64, shown by size.
    kubectl.run(&["create", "secret", "generic", "token", "--from-literal=key=s3cret"]);
    let described = kubectl.stdout(&["describe", "secret", "token"]);
    assert!(described.contains("Type:  Opaque"), "{described}");
    assert!(described.contains("key:  6 bytes") && !described.contains("s3cret"), "{described}");
    let data = kubectl.stdout(&["get", "secret", "token", "-o", "jsonpath={.data.key}"]);
    assert_eq!(data, "czNjcmV0");
    let columns = |args: &[&str]| -> Vec<Vec<String>> {
        let table = kubectl.stdout(args);
        // Columns are two or more spaces apart (a cell may hold one).
        table
            .lines()
            .map(|line| {
                line.split("  ").map(str::trim).filter(|cell| !cell.is_empty()).map(str::to_owned).collect()
            })
            .collect()
    };
    assert_eq!(columns(&["get", "secrets"])[1][..3], ["token", "Opaque", "1"]);
    let events = columns(&["get", "events"]);
    assert_eq!(events[0], ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]);
    assert_eq!(events[1], ["<unknown>", "Normal", "Elsewhere", "configmap/other", "looked at"]);

    let pod = dir.join("pod.yaml");
    std::fs::write(
        &pod,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  nodeName: n1\n  containers:\n  - name: a\n    \
         image: x\n  - name: b\n    image: x\nstatus:\n  phase: Running\n  podIP: 10.0.0.7\n  containerStatuses:\n  \
         - {name: a, ready: true, restartCount: 2, image: x, imageID: '', state: {running: {}}}\n  \
         - {name: b, ready: false, restartCount: 1, image: x, imageID: '', state: {waiting: {reason: CrashLoopBackOff}}}\n",
    )
    .unwrap();
    kubectl.run(&[&["create", "-f", pod.to_str().unwrap()], VALIDATION].concat());
    let pods = columns(&["get", "pods", "-o", "wide"]);
    assert_eq!(
        pods[0],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    );
    assert_eq!(
        pods[1],
        ["web", "1/2", "CrashLoopBackOff", "3", &pods[1][4], "10.0.0.7", "n1", "<none>", "<none>"]
    );

    // `kubectl patch` in each of its types.
    for (kind, patch) in [
        ("json", r#"[{"op":"add","path":"/data/colour","value":"red"}]"#),
        ("merge", r#"{"data":{"size":"4"}}"#),
        ("strategic", r#"{"metadata":{"labels":{"tier":"front"}}}"#),
    ] {
        let out = kubectl.stdout(&["patch", "configmap", "web", "--type", kind, "-p", patch]);
        assert_eq!(out.trim(), "configmap/web patched", "{kind}");
    }
    let patched = kubectl.stdout(&[
        "get",
        "configmap",
        "web",
        "-o",
        "jsonpath={.data.colour} {.data.size} {.metadata.labels.tier}",
    ]);
    assert_eq!(patched, "red 4 front");

    // A strategic merge patch merges a pod's containers by name: `b` changes, `a` stays.
    let out = kubectl.stdout(&[
        "patch",
        "pod",
        "web",
        "-p",
        r#"{"spec":{"containers":[{"name":"b","image":"web:2"}]}}"#,
    ]);
    assert_eq!(out.trim(), "pod/web patched");
    let containers = kubectl.stdout(&[
        "get",
        "pod",
        "web",
        "-o",
        "jsonpath={.spec.containers[*].name} {.spec.containers[*].image}",
    ]);
    assert_eq!(containers, "a b x web:2");
    session.stop();
}

#[test]
fn every_kubectl_here_prints_tables_watches_patches_and_describes() {
    let session = Session::start("versions");
    let dir = session.kubectl.home.clone();
    let kubectls = Kubectl::every_version(&session.server, &dir);
    assert!(!kubectls.is_empty(), "no kubectl runs: set KUBECTL");
    for (at, (version, kubectl)) in kubectls.iter().enumerate() {
        // A kubectl newer than 1.20 sends what `create configmap`, `create secret` and
        // `create namespace` make as protobuf, which a server built with the `protobuf`
        // feature reads (`cargo xtask test` builds it so); 1.20 sends JSON.
        if cfg!(feature = "protobuf") || minor(version) == Some(20) {
            let (literal, secret, namespace) =
                (format!("literal{at}"), format!("secret{at}"), format!("space{at}"));
            let made = kubectl.stdout(&[
                "create",
                "configmap",
                &literal,
                "--from-literal=a=b",
                "--from-literal=empty=",
            ]);
            assert_eq!(made.trim(), format!("configmap/{literal} created"), "{version}");
            let made = kubectl.stdout(&["create", "secret", "generic", &secret, "--from-literal=p=q"]);
            assert_eq!(made.trim(), format!("secret/{secret} created"), "{version}");
            let made = kubectl.stdout(&["create", "namespace", &namespace]);
            assert_eq!(made.trim(), format!("namespace/{namespace} created"), "{version}");
            let read = kubectl.stdout(&[
                "get",
                "configmap",
                &literal,
                "-o",
                "jsonpath={.data.a}/{.data.empty}/{.metadata.namespace}",
            ]);
            assert_eq!(read, "b//default", "{version}");
            let read = kubectl.stdout(&["get", "secret", &secret, "-o", "jsonpath={.data.p} {.type}"]);
            assert_eq!(read, "cQ== Opaque", "{version}");
            let read = kubectl.stdout(&["get", "namespace", &namespace, "-o", "jsonpath={.status.phase}"]);
            assert_eq!(read, "Active", "{version}");
            for (kind, object) in [("configmap", &literal), ("secret", &secret)] {
                kubectl.run(&["delete", kind, object]);
            }
        }
        // The rest as every version makes it (`create -f` is JSON).
        let name = format!("map{at}");
        let path = manifest(&dir, &name, "x");
        let path = path.to_str().unwrap();
        // From 1.27 kubectl validates through the server (`fieldValidation=Strict`, found in
        // the OpenAPI v3 document), so its defaults work; 1.20 validates against OpenAPI v2
        // in protobuf, and explains from it.
        if minor(version).is_some_and(|minor| minor >= 27) || VALIDATION.is_empty() {
            assert_eq!(
                kubectl.stdout(&["apply", "-f", path]).trim(),
                format!("configmap/{name} created"),
                "{version}"
            );
            let again = kubectl.stdout(&["apply", "-f", path]);
            assert_eq!(again.trim(), format!("configmap/{name} unchanged"), "{version}");
            // A second apply of a changed pod is a strategic merge patch with
            // `$setElementOrder/containers`: the changed container merges by name.
            let pod = dir.join(format!("{name}-pod.yaml"));
            let manifest = |image: &str| {
                format!(
                    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}-pod\nspec:\n  containers:\n  - name: a\n    \
                     image: {image}\n    ports:\n    - containerPort: 80\n  - name: b\n    image: x\n"
                )
            };
            std::fs::write(&pod, manifest("web:1")).unwrap();
            let applied = kubectl.stdout(&["apply", "-f", pod.to_str().unwrap()]);
            assert_eq!(applied.trim(), format!("pod/{name}-pod created"), "{version}");
            std::fs::write(&pod, manifest("web:2")).unwrap();
            let applied = kubectl.stdout(&["apply", "-f", pod.to_str().unwrap()]);
            assert_eq!(applied.trim(), format!("pod/{name}-pod configured"), "{version}");
            let containers = kubectl.stdout(&[
                "get",
                "pod",
                &format!("{name}-pod"),
                "-o",
                "jsonpath={.spec.containers[*].name} {.spec.containers[*].image} {.spec.containers[0].ports[0].containerPort}",
            ]);
            assert_eq!(containers, "a b web:2 x 80", "{version}");
            kubectl.run(&["delete", "-f", pod.to_str().unwrap()]);
            let explained = kubectl.stdout(&["explain", "configmap.data"]);
            assert!(
                explained.contains("ConfigMap") && explained.contains("map[string]string"),
                "{version}: {explained}"
            );
            let bogus = dir.join(format!("{name}-bogus.yaml"));
            let body =
                format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-bogus\nbogus: 1\n");
            std::fs::write(&bogus, body).unwrap();
            let refused = kubectl.command(&["create", "-f", bogus.to_str().unwrap()]).output().unwrap();
            let stderr = String::from_utf8_lossy(&refused.stderr);
            assert!(
                !refused.status.success() && stderr.contains(r#"unknown field "bogus""#),
                "{version}: {stderr}"
            );
        } else {
            let created = kubectl.stdout(&["create", "--validate=false", "-f", path]);
            assert_eq!(created.trim(), format!("configmap/{name} created"), "{version}");
        }
        let table = kubectl.stdout(&["get", "configmap", &name]);
        let rows: Vec<Vec<&str>> = table.lines().map(|line| line.split_whitespace().collect()).collect();
        assert_eq!(
            (&rows[0][..], &rows[1][..2]),
            (&["NAME", "DATA", "AGE"][..], &[name.as_str(), "1"][..]),
            "{version}"
        );
        let yaml = kubectl.stdout(&["get", "configmap", &name, "-o", "yaml"]);
        assert!(yaml.contains("greeting: hello") && yaml.contains("kind: ConfigMap"), "{version}: {yaml}");

        let (watch, lines) = kubectl.spawn(&["get", "configmap", &name, "--watch"]);
        let next =
            || lines.recv_timeout(HANG).unwrap_or_else(|_| panic!("{version}: the watch printed nothing"));
        assert!(next().starts_with("NAME"), "{version}");
        assert!(next().starts_with(&name), "{version}");
        for (kind, patch) in [
            ("json", r#"[{"op":"add","path":"/data/colour","value":"red"}]"#),
            ("merge", r#"{"data":{"size":"4"}}"#),
            ("strategic", r#"{"metadata":{"labels":{"tier":"front"}}}"#),
        ] {
            let out = kubectl.stdout(&["patch", "configmap", &name, "--type", kind, "-p", patch]);
            assert_eq!(out.trim(), format!("configmap/{name} patched"), "{version} {kind}");
            let line = next();
            let cells: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(cells[0], name, "{version} {kind}: {line}");
        }
        drop(watch);
        let data = kubectl.stdout(&[
            "get",
            "configmap",
            &name,
            "-o",
            "jsonpath={.data.colour} {.data.size} {.metadata.labels.tier}",
        ]);
        assert_eq!(data, "red 4 front", "{version}");
        kubectl.run(&["label", "configmap", &name, "checked=yes"]);
        let described = kubectl.stdout(&["describe", "configmap", &name]);
        assert!(described.contains("checked=yes") && described.contains("Events:"), "{version}: {described}");
        let deleted = kubectl.stdout(&["delete", "configmap", &name]);
        assert_eq!(deleted.trim(), format!("configmap \"{name}\" deleted"), "{version}");
    }
    session.stop();
}

#[test]
fn kubectl_creates_lists_and_deletes_namespaces_with_what_they_hold() {
    let session = Session::start("namespaces");
    let kubectl = &session.kubectl;
    let names = |args: &[&str]| -> Vec<String> {
        kubectl
            .stdout(args)
            .lines()
            .skip(1)
            .filter_map(|line| line.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    };
    // The namespaces Kubernetes starts with, Active.
    let table = kubectl.stdout(&["get", "namespaces"]);
    assert!(table.starts_with("NAME") && table.lines().nth(1).unwrap().contains("Active"), "{table}");
    assert_eq!(names(&["get", "namespaces"]), ["default", "kube-node-lease", "kube-public", "kube-system"]);

    assert_eq!(kubectl.stdout(&["create", "namespace", "team"]).trim(), "namespace/team created");
    kubectl.run(&["create", "configmap", "kept", "-n", "team", "--from-literal=a=b"]);
    kubectl.run(&["create", "configmap", "kept", "--from-literal=a=b"]);
    let missing = kubectl
        .command(&["create", "configmap", "lost", "-n", "nowhere", "--from-literal=a=b"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success() && stderr.contains(r#"namespaces "nowhere" not found"#), "{stderr}");

    // `kubectl wait` gets the namespace, then watches it: once its watch is open (the
    // server's gauge says so), the delete is what it waits for.
    let (mut wait, _) = kubectl.spawn(&["wait", "--for=delete", "namespace/team", "--timeout=60s"]);
    let watching = std::time::Instant::now();
    while !kubectl
        .stdout(&["get", "--raw", "/metrics"])
        .contains(r#"watchcache_watches_open{resource="namespaces"} 1"#)
    {
        assert!(watching.elapsed() < HANG, "kubectl wait never watched");
    }
    assert_eq!(kubectl.stdout(&["delete", "namespace", "team"]).trim(), "namespace \"team\" deleted");
    assert!(wait.wait().success(), "kubectl wait saw the delete");
    // Its objects went with it; another namespace's stayed.
    assert_eq!(names(&["get", "configmaps", "--all-namespaces"]), ["default"]);
    let refused = kubectl.command(&["delete", "namespace", "default"]).output().unwrap();
    assert!(String::from_utf8_lossy(&refused.stderr).contains("may not be deleted"), "{refused:?}");
    session.stop();
}
