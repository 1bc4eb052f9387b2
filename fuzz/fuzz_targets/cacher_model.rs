//! The cacher against the reference model: the model-based test's operation sequences
//! (its `tests/model/driver.rs`, shared, not copied), decoded from the fuzzer's bytes
//! instead of drawn by proptest, in both modes and under both slow-watcher policies.
//! Every watch's stream, every conditional put's verdict and every exact list is checked
//! against the model as the sequence runs.
#![no_main]

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/model/mod.rs"]
mod model;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use model::driver::{run, run_upstream, Op, Read, StartSpec, UpstreamOp, WindowSize, KEYS, NODES};
use model::FilterSpec;
use watchcache::SlowWatcherPolicy;

/// As many operations as the property test's longest sequence.
const MOST_OPS: usize = 80;

fn filter(u: &mut Unstructured<'_>) -> Result<FilterSpec> {
    Ok(FilterSpec {
        prefix: u.choose(&["", "a/", "b/"])?,
        trigger: if u.arbitrary()? { Some(NODES[u.choose_index(NODES.len())?].to_string()) } else { None },
        even_only: u.arbitrary()?,
    })
}

fn read(u: &mut Unstructured<'_>) -> Result<Read> {
    Ok(match u.int_in_range(0..=8u8)? {
        0 | 1 => {
            let start = match u.int_in_range(0..=3u8)? {
                0 => StartSpec::Latest,
                1 => StartSpec::Back(u.int_in_range(0..=5)?),
                2 => StartSpec::Ahead(u.int_in_range(1..=3)?),
                _ => StartSpec::Snapshot,
            };
            Read::Watch { filter: filter(u)?, start, buffer: u.int_in_range(1..=3)? }
        }
        2..=4 => Read::Drain { watch: u.int_in_range(0..=7)?, n: u.int_in_range(1..=5)? },
        5 | 6 => Read::DrainBatch { watch: u.int_in_range(0..=7)?, n: u.int_in_range(1..=7)? },
        7 => Read::Drop { watch: u.int_in_range(0..=7)? },
        _ => Read::ListExact { back: u.int_in_range(0..=11)? },
    })
}

fn op(u: &mut Unstructured<'_>) -> Result<Op> {
    let key = u.choose_index(KEYS.len())?;
    Ok(match u.int_in_range(0..=17u8)? {
        0..=5 => Op::Put { key, node: u.choose_index(NODES.len())?, value: u.int_in_range(0..=99)? },
        6 | 7 => Op::Delete { key },
        8 | 9 => Op::PutIf {
            key,
            node: u.choose_index(NODES.len())?,
            value: u.int_in_range(0..=99)?,
            expect: if u.arbitrary()? { Some(u.int_in_range(0..=99)?) } else { None },
        },
        _ => Op::Read(read(u)?),
    })
}

fn upstream_op(u: &mut Unstructured<'_>) -> Result<UpstreamOp> {
    Ok(match u.int_in_range(0..=14u8)? {
        0..=5 => {
            let mut changes = std::collections::BTreeMap::new();
            for _ in 0..u.int_in_range(1..=3)? {
                let object = if u.arbitrary()? {
                    Some((u.choose_index(NODES.len())?, u.int_in_range(0..=99)?))
                } else {
                    None
                };
                changes.insert(u.choose_index(KEYS.len())?, object);
            }
            UpstreamOp::Apply { changes: changes.into_iter().collect(), skip: u.int_in_range(0..=3)? }
        }
        6 => UpstreamOp::Progress { skip: u.int_in_range(0..=3)? },
        7 => UpstreamOp::Break,
        8 => UpstreamOp::Relist { skip: u.int_in_range(0..=5)? },
        _ => UpstreamOp::Read(read(u)?),
    })
}

fn sequence<T>(u: &mut Unstructured<'_>, mut one: impl FnMut(&mut Unstructured<'_>) -> Result<T>) -> Vec<T> {
    let mut ops = Vec::new();
    while ops.len() < MOST_OPS {
        match one(u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

fuzz_target!(|bytes: &[u8]| {
    let mut u = Unstructured::new(bytes);
    let (Ok(mode), Ok(events), Ok(bytes)) =
        (u.int_in_range(0..=3u8), u.int_in_range(3..=39usize), u.int_in_range(0..=119usize))
    else {
        return;
    };
    // A byte budget of 0 stands for none.
    let window = WindowSize { events, bytes: (bytes > 0).then_some(bytes) };
    let policy = if mode & 1 == 0 { SlowWatcherPolicy::Park } else { SlowWatcherPolicy::Terminate };
    if mode & 2 == 0 {
        run(sequence(&mut u, op), policy, window);
    } else {
        run_upstream(sequence(&mut u, upstream_op), policy, window);
    }
});
