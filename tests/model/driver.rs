//! Runs an operation sequence against the engine and the reference model at once, and
//! checks every answer as it goes: the property tests draw the sequences with proptest,
//! the fuzz target decodes them from the fuzzer's bytes.

use super::{FilterSpec, Model, Obj, Tracked, UpstreamWriter};
use crate::common::{next, settle};
use futures::executor::block_on;
use std::time::Duration;
use watchcache::{
    At, Cacher, CacherBuilder, ConditionalError, List, ListError, ListOptions, ManualClock,
    SlowWatcherPolicy, Start, WatchError, WatchOptions,
};

pub const KEYS: [&str; 5] = ["a/0", "a/1", "a/2", "b/0", "b/1"];
pub const NODES: [&str; 2] = ["n0", "n1"];

#[derive(Debug, Clone)]
pub enum StartSpec {
    /// The model's current revision (the engine's `Now`, made exact).
    Latest,
    /// This many revisions back.
    Back(u64),
    /// This many revisions ahead: a revision the cacher has not reached yet.
    Ahead(u64),
    Snapshot,
}

#[derive(Debug, Clone)]
pub enum Op {
    Put {
        key: usize,
        node: usize,
        value: u32,
    },
    Delete {
        key: usize,
    },
    /// A put decided by the dispatcher against the key's current value (`None`: only if
    /// the key is absent), checked against the model's verdict.
    PutIf {
        key: usize,
        node: usize,
        value: u32,
        expect: Option<u32>,
    },
    Read(Read),
}

/// The window a run's cacher keeps: at most `events`, and with `bytes` a byte budget on
/// top, each object weighing 1 to 8 by its value, so that the budget evicts at points
/// the event capacity would not.
#[derive(Debug, Clone, Copy)]
pub struct WindowSize {
    pub events: usize,
    pub bytes: Option<usize>,
}

/// The builder both modes share.
fn builder(policy: SlowWatcherPolicy, window: WindowSize) -> CacherBuilder<Obj> {
    let mut builder = Cacher::builder()
        .trigger(|object: &Obj| Some(object.node.as_str()))
        .slow_watcher_policy(policy)
        .window_capacity(window.events)
        .future_wait(Duration::from_secs(600))
        .clock(ManualClock::new());
    if let Some(bytes) = window.bytes {
        builder = builder.window_bytes(bytes, |object: &Obj| 1 + object.value as usize % 8);
    }
    builder
}

/// What both modes do with watches and lists, against `model`.
#[derive(Debug, Clone)]
pub enum Read {
    Watch {
        filter: FilterSpec,
        start: StartSpec,
        buffer: usize,
    },
    /// Read up to `n` items without blocking; watches never drained are the stalled ones.
    Drain {
        watch: usize,
        n: usize,
    },
    /// The same in one batch (`try_visit`).
    DrainBatch {
        watch: usize,
        n: usize,
    },
    Drop {
        watch: usize,
    },
    /// A list at exactly this many revisions back (rolled back through the window).
    ListExact {
        back: u64,
    },
}

/// Runs one read against the engine and checks it against the model.
fn apply_read(cacher: &Cacher<Obj>, model: &Model, watches: &mut Vec<Tracked>, read: Read) {
    match read {
        Read::Watch { filter, start, buffer } => {
            let (engine_start, start_revision) = match start {
                StartSpec::Latest => (Start::Revision(model.revision()), Some(model.revision())),
                StartSpec::Back(back) => {
                    let revision = model.revision().saturating_sub(back);
                    (Start::Revision(revision), Some(revision))
                }
                StartSpec::Ahead(ahead) => {
                    let revision = model.revision() + ahead;
                    (Start::Revision(revision), Some(revision))
                }
                StartSpec::Snapshot => (Start::Snapshot, None),
            };
            let mut options = WatchOptions::new().prefix(filter.prefix).start(engine_start).buffer(buffer);
            if let Some(node) = &filter.trigger {
                options = options.trigger(node.clone());
            }
            if filter.even_only {
                options = options.predicate(|object: &Obj| object.value % 2 == 0);
            }
            match cacher.watch(options) {
                Ok(watch) => watches.push(Tracked::new(watch, filter, start_revision)),
                Err(WatchError::Expired { requested, oldest }) => {
                    assert_eq!(Some(requested), start_revision);
                    assert!(oldest > requested && oldest <= model.revision());
                }
                Err(other) => panic!("unexpected watch error {other:?}"),
            }
        }
        Read::Drain { watch, n } => {
            if let Some(tracked) = watches.get_mut(watch) {
                for _ in 0..n {
                    if !tracked.try_take() {
                        break;
                    }
                }
                tracked.check(model, false);
            }
        }
        Read::DrainBatch { watch, n } => {
            if let Some(tracked) = watches.get_mut(watch) {
                tracked.try_take_batch(n);
                tracked.check(model, false);
            }
        }
        Read::Drop { watch } => {
            if watch < watches.len() {
                let dropped = watches.remove(watch);
                dropped.check(model, false);
            }
        }
        Read::ListExact { back } => {
            let revision = model.revision().saturating_sub(back);
            match cacher.list(ListOptions::new().at(At::Exact(revision))) {
                Ok(List { items: objects, revision: at, .. }) => {
                    assert!(model.known_at(revision), "listed revision {revision}, inside a relist's gap");
                    assert_eq!(at, revision);
                    let listed: Vec<(String, u32)> =
                        objects.iter().map(|(key, object)| (key.to_string(), object.value)).collect();
                    assert_eq!(listed, model.state_at(revision, &FilterSpec::everything()));
                }
                Err(ListError::Expired { requested, oldest }) => {
                    assert_eq!(requested, revision);
                    assert!(revision < oldest && oldest <= model.revision(), "{revision} {oldest}");
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
    }
}

/// The end of a run: lists at the model's revision, then shutdown, after which every
/// watch must end with exactly what the model says.
fn finish(cacher: Cacher<Obj>, model: &Model, watches: &mut [Tracked]) {
    settle(&cacher, model.revision());
    for filter in [
        FilterSpec { prefix: "", trigger: None, even_only: false },
        FilterSpec { prefix: "a/", trigger: Some("n1".into()), even_only: true },
    ] {
        let mut options = ListOptions::new().prefix(filter.prefix);
        if let Some(node) = &filter.trigger {
            options = options.trigger(node.clone());
        }
        if filter.even_only {
            options = options.predicate(|object: &Obj| object.value % 2 == 0);
        }
        let List { items, revision, .. } = cacher.list(options).unwrap();
        assert_eq!(revision, model.revision());
        let items: Vec<_> = items.iter().map(|(key, object)| (key.to_string(), object.value)).collect();
        assert_eq!(items, model.state_at(revision, &filter));
    }

    cacher.shutdown();
    for tracked in watches {
        while tracked.end.is_none() {
            let item = next(&mut tracked.watch);
            tracked.record(item);
        }
        assert!(!tracked.try_take(), "nothing after the end");
        tracked.check(model, true);
    }
}

pub fn run(ops: Vec<Op>, policy: SlowWatcherPolicy, window: WindowSize) {
    let cacher = builder(policy, window).build();
    let producer = cacher.producer();
    let mut model = Model::default();
    let mut watches: Vec<Tracked> = Vec::new();

    for op in ops {
        match op {
            Op::Put { key, node, value } => {
                let object = Obj { node: NODES[node].to_string(), value };
                model.put(KEYS[key], object.clone());
                producer.put(KEYS[key], object).unwrap();
            }
            Op::Delete { key } => {
                model.delete(KEYS[key]);
                producer.delete(KEYS[key]).unwrap();
            }
            Op::PutIf { key, node, value, expect } => {
                let object = Obj { node: NODES[node].to_string(), value };
                let passes = model.current(KEYS[key]).map(|current| current.value) == expect;
                let check = move |current: Option<&Obj>| current.map(|current| current.value) == expect;
                match block_on(producer.put_if(KEYS[key], object.clone(), check)) {
                    Ok(written) => {
                        assert!(passes, "applied a put whose check the model fails");
                        model.put(KEYS[key], object);
                        assert_eq!(written.revision, model.revision());
                    }
                    Err(ConditionalError::Rejected { current }) => {
                        assert!(!passes, "rejected a put whose check the model passes");
                        let model_value = model.current(KEYS[key]).map(|current| current.value);
                        assert_eq!(current.map(|current| current.value), model_value);
                    }
                    Err(other) => panic!("unexpected {other:?}"),
                }
            }
            Op::Read(read) => apply_read(&cacher, &model, &mut watches, read),
        }
    }
    finish(cacher, &model, &mut watches);
}

/// An upstream's writes, as the cacher's upstream handle passes them on.
#[derive(Debug, Clone)]
pub enum UpstreamOp {
    /// Changes to distinct keys at a revision `skip` after the next one (`None` deletes).
    Apply {
        changes: Vec<(usize, Option<(usize, u32)>)>,
        skip: u64,
    },
    /// Progress `skip` revisions on.
    Progress {
        skip: u64,
    },
    /// The upstream's watch breaks: the cacher misses changes until the next relist.
    Break,
    /// The upstream's whole state, `skip` revisions on; ends a break.
    Relist {
        skip: u64,
    },
    Read(Read),
}

pub fn run_upstream(ops: Vec<UpstreamOp>, policy: SlowWatcherPolicy, window: WindowSize) {
    let (cacher, upstream) = builder(policy, window).upstream();
    let mut writer = UpstreamWriter::loaded(upstream, 3);
    let mut watches: Vec<Tracked> = Vec::new();
    for op in ops {
        match op {
            UpstreamOp::Apply { changes, skip } => {
                let changes = changes
                    .into_iter()
                    .map(|(key, object)| {
                        let object = object.map(|(node, value)| Obj { node: NODES[node].to_string(), value });
                        (KEYS[key].to_string(), object)
                    })
                    .collect();
                writer.apply(skip, changes);
            }
            UpstreamOp::Progress { skip } => writer.progress(skip),
            UpstreamOp::Break => writer.break_watch(),
            UpstreamOp::Relist { skip } => writer.relist(skip),
            UpstreamOp::Read(read) => {
                // Reads see what the cacher has applied: wait for it, as a client of a
                // replica would wait for the revision it asks about.
                settle(&cacher, writer.model.revision());
                apply_read(&cacher, &writer.model, &mut watches, read);
            }
        }
    }
    finish(cacher, &writer.model, &mut watches);
}
