//! Property tests: random sequences of put / conditional put / delete / watch / drain /
//! drop / stall / exact list run against the engine and against the reference model in
//! `model/`; every watcher's stream must be exactly what the model says, up to an end
//! that names a correct resume point; every conditional put gets the model's verdict and
//! every exact list the model's state at its revision.
//!
//! The upstream mode's sequences replace the writes with an upstream's: changes at
//! sparse revisions, transactions of several keys, progress marks, breaks during which
//! the cacher misses changes, and relists after them (keys appearing, changing and
//! vanishing); every watch's stream must be the model's (exact between relists, the net
//! difference across one), and no watch may end where the model says it goes on.
//!
//! proptest prints the failing case and its seed, and keeps it in `proptest-regressions/`
//! to replay.
mod common;
mod model;

use model::driver::{run, run_upstream, Op, Read, StartSpec, UpstreamOp, WindowSize, KEYS, NODES};
use model::FilterSpec;
use proptest::prelude::*;
use watchcache::SlowWatcherPolicy;

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
    prop_oneof![
        6 => (0..KEYS.len(), 0..NODES.len(), 0..100u32).prop_map(|(key, node, value)| Op::Put { key, node, value }),
        2 => (0..KEYS.len()).prop_map(|key| Op::Delete { key }),
        2 => (0..KEYS.len(), 0..NODES.len(), 0..100u32, prop::option::of(0..100u32))
            .prop_map(|(key, node, value, expect)| Op::PutIf { key, node, value, expect }),
        8 => read().prop_map(Op::Read),
    ]
}

fn read() -> impl Strategy<Value = Read> {
    let start = prop_oneof![
        Just(StartSpec::Latest),
        (0..6u64).prop_map(StartSpec::Back),
        (1..4u64).prop_map(StartSpec::Ahead),
        Just(StartSpec::Snapshot)
    ];
    prop_oneof![
        2 => (filter_spec(), start, 1..4usize).prop_map(|(filter, start, buffer)| Read::Watch { filter, start, buffer }),
        3 => (0..8usize, 1..6usize).prop_map(|(watch, n)| Read::Drain { watch, n }),
        2 => (0..8usize, 1..8usize).prop_map(|(watch, n)| Read::DrainBatch { watch, n }),
        1 => (0..8usize).prop_map(|watch| Read::Drop { watch }),
        1 => (0..12u64).prop_map(|back| Read::ListExact { back }),
    ]
}

fn upstream_op() -> impl Strategy<Value = UpstreamOp> {
    let object = prop::option::of((0..NODES.len(), 0..100u32));
    let changes = prop::collection::btree_map(0..KEYS.len(), object, 1..4)
        .prop_map(|changes| changes.into_iter().collect::<Vec<_>>());
    prop_oneof![
        6 => (changes, 0..4u64).prop_map(|(changes, skip)| UpstreamOp::Apply { changes, skip }),
        1 => (0..4u64).prop_map(|skip| UpstreamOp::Progress { skip }),
        1 => Just(UpstreamOp::Break),
        1 => (0..6u64).prop_map(|skip| UpstreamOp::Relist { skip }),
        6 => read().prop_map(UpstreamOp::Read),
    ]
}

/// An event capacity, and half the time a byte budget of a few objects' weight.
fn window_size() -> impl Strategy<Value = WindowSize> {
    (3usize..40, prop::option::of(1usize..120)).prop_map(|(events, bytes)| WindowSize { events, bytes })
}

/// The longest operation sequence: shorter under Miri, which interprets every step.
const OPS: usize = if cfg!(miri) { 24 } else { 80 };

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 2 } else { ProptestConfig::default().cases }, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_model_under_park(ops in prop::collection::vec(op(), 1..OPS), window in window_size()) {
        run(ops, SlowWatcherPolicy::Park, window);
    }

    #[test]
    fn engine_matches_model_under_terminate(ops in prop::collection::vec(op(), 1..OPS), window in window_size()) {
        run(ops, SlowWatcherPolicy::Terminate, window);
    }

    #[test]
    fn upstream_matches_model_under_park(ops in prop::collection::vec(upstream_op(), 1..OPS), window in window_size()) {
        run_upstream(ops, SlowWatcherPolicy::Park, window);
    }

    #[test]
    fn upstream_matches_model_under_terminate(
        ops in prop::collection::vec(upstream_op(), 1..OPS),
        window in window_size(),
    ) {
        run_upstream(ops, SlowWatcherPolicy::Terminate, window);
    }
}
