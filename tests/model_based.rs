//! Property tests: random sequences of put / conditional put / delete / watch / drain /
//! drop / stall / exact list run against the engine and against the reference model in
//! `model/`; every watcher's stream must be exactly what the model says, up to an end
//! that names a correct resume point; every conditional put gets the model's verdict and
//! every exact list the model's state at its revision. proptest prints the failing case and its seed, and keeps it in
//! `proptest-regressions/` to replay.
mod common;
mod model;

use common::{next, settle};
use futures::executor::block_on;
use model::{FilterSpec, Model, Obj, Tracked};
use proptest::prelude::*;
use std::time::Duration;
use watchcache::{
    At, Cacher, ConditionalError, ListError, ListOptions, ManualClock, SlowWatcherPolicy, Start, WatchError,
    WatchOptions,
};

const KEYS: [&str; 5] = ["a/0", "a/1", "a/2", "b/0", "b/1"];
const NODES: [&str; 2] = ["n0", "n1"];

#[derive(Debug, Clone)]
enum StartSpec {
    /// The model's current revision (the engine's `Now`, made exact).
    Latest,
    /// This many revisions back.
    Back(u64),
    /// This many revisions ahead: a revision the cacher has not reached yet.
    Ahead(u64),
    Snapshot,
}

#[derive(Debug, Clone)]
enum Op {
    Put {
        key: usize,
        node: usize,
        value: u32,
    },
    Delete {
        key: usize,
    },
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
    /// A put decided by the dispatcher against the key's current value (`None`: only if
    /// the key is absent), checked against the model's verdict.
    PutIf {
        key: usize,
        node: usize,
        value: u32,
        expect: Option<u32>,
    },
    /// A list at exactly this many revisions back (rolled back through the window).
    ListExact {
        back: u64,
    },
}

fn filter_spec() -> impl Strategy<Value = FilterSpec> {
    (prop::sample::select(vec!["", "a/", "b/"]), prop::option::of(0..NODES.len()), any::<bool>()).prop_map(
        |(prefix, node, even_only)| FilterSpec {
            prefix,
            trigger: node.map(|node| NODES[node].to_string()),
            even_only,
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    let start = prop_oneof![
        Just(StartSpec::Latest),
        (0..6u64).prop_map(StartSpec::Back),
        (1..4u64).prop_map(StartSpec::Ahead),
        Just(StartSpec::Snapshot)
    ];
    prop_oneof![
        6 => (0..KEYS.len(), 0..NODES.len(), 0..100u32).prop_map(|(key, node, value)| Op::Put { key, node, value }),
        2 => (0..KEYS.len()).prop_map(|key| Op::Delete { key }),
        2 => (filter_spec(), start, 1..4usize).prop_map(|(filter, start, buffer)| Op::Watch { filter, start, buffer }),
        3 => (0..8usize, 1..6usize).prop_map(|(watch, n)| Op::Drain { watch, n }),
        2 => (0..8usize, 1..8usize).prop_map(|(watch, n)| Op::DrainBatch { watch, n }),
        1 => (0..8usize).prop_map(|watch| Op::Drop { watch }),
        2 => (0..KEYS.len(), 0..NODES.len(), 0..100u32, prop::option::of(0..100u32))
            .prop_map(|(key, node, value, expect)| Op::PutIf { key, node, value, expect }),
        1 => (0..12u64).prop_map(|back| Op::ListExact { back }),
    ]
}

fn run(ops: Vec<Op>, policy: SlowWatcherPolicy, window: usize) {
    let cacher: Cacher<Obj> = Cacher::builder()
        .trigger(|object: &Obj| Some(object.node.as_str()))
        .slow_watcher_policy(policy)
        .window_capacity(window)
        .future_wait(Duration::from_secs(600))
        .clock(ManualClock::new())
        .build();
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
            Op::Watch { filter, start, buffer } => {
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
                let mut options =
                    WatchOptions::new().prefix(filter.prefix).start(engine_start).buffer(buffer);
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
            Op::Drain { watch, n } => {
                if let Some(tracked) = watches.get_mut(watch) {
                    for _ in 0..n {
                        if !tracked.try_take() {
                            break;
                        }
                    }
                    tracked.check(&model, false);
                }
            }
            Op::DrainBatch { watch, n } => {
                if let Some(tracked) = watches.get_mut(watch) {
                    tracked.try_take_batch(n);
                    tracked.check(&model, false);
                }
            }
            Op::Drop { watch } => {
                if watch < watches.len() {
                    let dropped = watches.remove(watch);
                    dropped.check(&model, false);
                }
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
            Op::ListExact { back } => {
                let revision = model.revision().saturating_sub(back);
                match cacher.list(ListOptions::new().at(At::Exact(revision))) {
                    Ok((objects, at)) => {
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
        let (items, revision) = cacher.list(options).unwrap();
        assert_eq!(revision, model.revision());
        let items: Vec<_> = items.iter().map(|(key, object)| (key.to_string(), object.value)).collect();
        assert_eq!(items, model.state_at(revision, &filter));
    }

    cacher.shutdown();
    for tracked in &mut watches {
        while tracked.end.is_none() {
            let item = next(&mut tracked.watch);
            tracked.record(item);
        }
        assert!(!tracked.try_take(), "nothing after the end");
        tracked.check(&model, true);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 2 } else { 256 }, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_model_under_park(ops in prop::collection::vec(op(), 1..80), window in 3usize..40) {
        run(ops, SlowWatcherPolicy::Park, window);
    }

    #[test]
    fn engine_matches_model_under_terminate(ops in prop::collection::vec(op(), 1..80), window in 3usize..40) {
        run(ops, SlowWatcherPolicy::Terminate, window);
    }
}
