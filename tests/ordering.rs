//! Total order: revisions go up by one per change; each producer's changes keep their
//! order; every watch sees the same order.
mod common;
use common::*;
use std::sync::{Arc, Barrier};
use watchcache::{Cacher, Start, WatchOptions};

#[test]
fn many_producers_each_keep_their_order() {
    const PRODUCERS: usize = 4;
    let per_producer: u32 = if cfg!(miri) { 20 } else { 2_000 };
    let cacher: Cacher<u32> = Cacher::builder().incoming_capacity(16).window_capacity(100_000).build();
    let mut watch = cacher.watch(WatchOptions::new().start(Start::Revision(0))).unwrap();
    let start = Arc::new(Barrier::new(PRODUCERS));
    let handles: Vec<_> = (0..PRODUCERS)
        .map(|producer_id| {
            let producer = cacher.producer();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                for sequence in 0..per_producer {
                    producer.put(format!("p{producer_id}/{}", sequence % 7), sequence).unwrap();
                }
            })
        })
        .collect();
    handles.into_iter().for_each(|handle| handle.join().unwrap());

    let total = PRODUCERS * per_producer as usize;
    let events = take(&mut watch, total);
    let mut last_per_producer = [None::<u32>; PRODUCERS];
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.revision(), index as u64 + 1, "revisions are contiguous");
        let producer_id: usize = event.key().unwrap()[1..2].parse().unwrap();
        let sequence = **object(event);
        if let Some(last) = last_per_producer[producer_id] {
            assert_eq!(sequence, last + 1, "producer {producer_id} order kept");
        }
        last_per_producer[producer_id] = Some(sequence);
    }
    assert_eq!(cacher.stats().incoming_capacity, 16);
}

/// Pushed (indexed) and pulled (unindexed) delivery are two code paths; both must give
/// every watch the same sequence, also when the pushed one is parked on the way.
#[test]
fn indexed_and_unindexed_watches_see_the_same_sequence() {
    let cacher: Cacher<u32> = Cacher::builder().trigger(|_: &u32| Some("all")).build();
    let producer = cacher.producer();
    let mut pulled = cacher.watch(WatchOptions::new().start(Start::Revision(0))).unwrap();
    let mut pushed =
        cacher.watch(WatchOptions::new().trigger("all").start(Start::Revision(0)).buffer(3)).unwrap();
    for value in 0..50 {
        producer.put(format!("k{}", value % 5), value).unwrap();
    }
    let a = summaries(&take(&mut pulled, 50));
    let b = summaries(&take(&mut pushed, 50));
    assert_eq!(a.len(), 50);
    assert_eq!(a, b);
}
