//! Loom models: every interleaving of a few operations on tiny capacities. Run with
//! `RUSTFLAGS="--cfg loom" cargo test --lib --release loom_models`.
//!
//! The models here cover one lock-free structure each (ring, window, wake-ups, leases);
//! CI runs them with two preemptions. [`hand_off`] runs a whole cacher.

mod hand_off;

use crate::event::{Origin, Record};
use crate::lease::{self, Issuer};
use crate::notify::{thread_waker, Parker, WaitList};
use crate::ring::{self, PushError, Receiver, Sender};
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::{thread, Arc, UnsafeCell};
use crate::window::{ByteBudget, Capacity, Cursor, Read, WindowWriter};
use std::time::Duration;

/// Pushes `value`, yielding while the ring is full.
fn push_until_accepted<T>(sender: &Sender<T>, mut value: T) {
    loop {
        match sender.push(value) {
            Ok(()) => return,
            Err(PushError::Full(rejected)) => {
                value = rejected;
                thread::yield_now();
            }
            Err(PushError::Closed(_)) => unreachable!("never closed here"),
        }
    }
}

/// Pops `count` values, yielding while the ring is empty.
fn pop_all<T>(receiver: &mut Receiver<T>, count: usize) -> Vec<T> {
    let mut received = Vec::new();
    while received.len() < count {
        match receiver.pop() {
            Some(value) => received.push(value),
            None => thread::yield_now(),
        }
    }
    received
}

#[test]
fn ring_two_producers_race_for_the_tail() {
    loom::model(|| {
        let (sender, mut receiver) = ring::bounded(2);
        let producers: Vec<_> = (0..2)
            .map(|producer| {
                let sender = sender.clone();
                thread::spawn(move || push_until_accepted(&sender, producer))
            })
            .collect();
        let mut received = pop_all(&mut receiver, 2);
        producers.into_iter().for_each(|producer| producer.join().unwrap());
        received.sort_unstable();
        assert_eq!(received, [0, 1]);
    });
}

/// One producer pushes `0..values` through a ring of `capacity`; the consumer must get
/// them all, in order.
fn hands_over_in_order(capacity: usize, values: u64) {
    loom::model(move || {
        let (sender, mut receiver) = ring::bounded(capacity);
        let producer =
            thread::spawn(move || (0..values).for_each(|value| push_until_accepted(&sender, value)));
        assert_eq!(pop_all(&mut receiver, values as usize), (0..values).collect::<Vec<_>>());
        producer.join().unwrap();
    });
}

#[test]
fn one_slot_ring_hands_over_values_in_order() {
    hands_over_in_order(1, 2);
}

#[test]
fn ring_wraps_around_in_order() {
    hands_over_in_order(2, 3);
}

#[test]
fn ring_close_loses_no_accepted_value() {
    loom::model(|| {
        let (sender, mut receiver) = ring::bounded(2);
        let producer = {
            let sender = sender.clone();
            thread::spawn(move || sender.push(7).is_ok())
        };
        sender.close();
        let accepted = producer.join().unwrap();
        let mut drained = Vec::new();
        while receiver.len() > 0 {
            if let Some(value) = receiver.pop() {
                drained.push(value);
            }
        }
        assert_eq!(drained, if accepted { vec![7] } else { vec![] });
    });
}

/// A record of `revision`, whose revision started after `since`.
fn record(revision: u64, since: u64, ends_revision: bool) -> Record<u64> {
    Record::new(
        (revision, since),
        std::sync::Arc::from("k"),
        (Some(std::sync::Arc::new(revision)), None),
        (Origin::Change, ends_revision),
        Duration::ZERO,
    )
}

/// A reader follows a writer that evicts the chunks under it (two events per chunk, two
/// kept): every record it reads is the right one, in order; `Pending` only for a
/// revision past the head it saw; `Evicted` only with an oldest revision past the one it
/// asked for.
#[test]
fn window_reader_follows_appends_and_evictions_across_chunks() {
    loom::model(|| follow_appends_and_evictions(WindowWriter::new(Capacity::Fixed(2), 0)));
}

/// The same with a byte budget and no event bound, so that chunks are sealed early and
/// vary in length (one, two, one record) and the budget evicts four records at once:
/// a reader's seek finds the chunk by binary search, under the same orderings.
#[test]
fn window_reader_follows_chunks_sealed_and_evicted_by_bytes() {
    loom::model(|| {
        let mut writer = WindowWriter::new(Capacity::Fixed(100), 0);
        // A limit of 16 seals a chunk at 2 bytes: records 1 and 4 each fill one.
        let weights = [3, 0, 0, 9, 9];
        writer.limit_bytes(ByteBudget {
            limit: 16,
            weigh: std::sync::Arc::new(move |revision: &u64| weights[*revision as usize - 1]),
        });
        follow_appends_and_evictions(writer);
    });
}

/// Revisions 1 to 5, one record each, appended and published while a reader follows.
fn follow_appends_and_evictions(mut writer: WindowWriter<u64>) {
    let window = writer.reader();
    let reader = thread::spawn(move || {
        let mut cursor = Cursor::new();
        let mut next = 1;
        for _ in 0..4 {
            let head = window.head();
            match window.read(next, &mut cursor) {
                Read::Record(record) => {
                    assert_eq!(record.revision, next);
                    assert_eq!(*record.object.as_deref().unwrap(), next);
                    next += 1;
                }
                Read::Pending => {
                    assert!(next > head, "pending at {next} although the head was {head}");
                    thread::yield_now();
                }
                Read::Evicted => {
                    let oldest = window.oldest();
                    assert!(oldest >= next, "evicted at {next} with oldest {oldest}");
                    return;
                }
            }
        }
    });
    for revision in 1..=5 {
        writer.append(record(revision, revision - 1, true));
        writer.publish_revision(revision);
        writer.trim(Duration::ZERO);
    }
    reader.join().unwrap();
}

/// Sparse revisions with transactions, across chunks, while the writer evicts: a reader
/// that finds where the records after a revision the cacher has reached start (as every
/// watch start and resume does) gets the position of the revision's last record, whose
/// successors are exactly the newer records, or an `oldest` that says some of them are
/// gone, also when an eviction drops a whole chunk between the reader's loads.
#[test]
fn window_maps_sparse_revisions_while_it_evicts() {
    loom::model(|| {
        // Revision 10, then 20 as a transaction of two records, then 30; two kept.
        let revisions: [&[(u64, u64, bool)]; 3] =
            [&[(10, 0, true)], &[(20, 10, false), (20, 10, true)], &[(30, 20, true)]];
        let mut writer = WindowWriter::new(Capacity::Fixed(2), 0);
        let window = writer.reader();
        let reader = thread::spawn(move || {
            let mut cursor = Cursor::new();
            // Where the records after each asked revision start: revision 10 is
            // position 1, revision 20 ends at position 3.
            for (asked, last_position) in [(10, 1), (20, 3)] {
                if asked > window.revision() {
                    thread::yield_now();
                    continue;
                }
                match window.position_after(asked) {
                    Ok(position) => {
                        assert_eq!(position, last_position, "the records after revision {asked}");
                        if let Read::Record(next) = window.read(position + 1, &mut cursor) {
                            assert!(next.revision > asked, "record {} after revision {asked}", next.revision);
                        }
                        if let Read::Record(at) = window.read(position, &mut cursor) {
                            assert!(at.revision <= asked && at.ends_revision, "boundary inside a revision");
                        }
                    }
                    Err(oldest) => assert!(oldest > asked, "refused {asked} with oldest {oldest}"),
                }
            }
        });
        for records in revisions {
            for &(revision, since, ends) in records {
                writer.append(record(revision, since, ends));
            }
            writer.publish_revision(records[0].0);
            writer.trim(Duration::ZERO);
        }
        reader.join().unwrap();
    });
}

// The sleeper runs on the spawned thread so that the main thread never joins a thread
// that may unpark it: loom asserts on an unpark during `join` (tokio-rs/loom#249).
#[test]
fn parker_never_loses_a_wake_up() {
    loom::model(|| {
        let parker = Arc::new(Parker::new());
        let ready = Arc::new(AtomicBool::new(false));
        let sleeper = {
            let (parker, ready) = (parker.clone(), ready.clone());
            thread::spawn(move || {
                let waker = thread_waker();
                while !ready.load(Ordering::Acquire) {
                    parker.arm(&waker);
                    if ready.load(Ordering::Acquire) {
                        break;
                    }
                    thread::park();
                }
            })
        };
        ready.store(true, Ordering::Release);
        parker.wake();
        sleeper.join().unwrap();
    });
}

#[test]
fn wait_list_wakes_every_listed_sleeper() {
    loom::model(|| {
        let list = Arc::new(WaitList::new());
        let ready = Arc::new(AtomicBool::new(false));
        let sleeper = {
            let (list, ready) = (list.clone(), ready.clone());
            thread::spawn(move || {
                let parker = Arc::new(Parker::new());
                let waker = thread_waker();
                while !ready.load(Ordering::Acquire) {
                    list.arm(&parker, &waker);
                    if ready.load(Ordering::Acquire) {
                        break;
                    }
                    thread::park();
                }
            })
        };
        ready.store(true, Ordering::Release);
        list.notify_all();
        sleeper.join().unwrap();
    });
}

/// A value that counts its drops, and writes its plain data as it goes: loom reports a
/// lease holder's read of that data that the drop does not happen after.
struct Counted {
    drops: Arc<AtomicUsize>,
    data: UnsafeCell<u64>,
}

impl Counted {
    fn read(&self) -> u64 {
        // SAFETY: shared reads only, until the drop (which loom orders against them).
        self.data.with(|data| unsafe { *data })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: the last reference.
        self.data.with_mut(|data| unsafe { *data = 0 });
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a thread's exit does with its deferred lease drops. Loom's `join` returns before
/// the thread's thread-locals are dropped (std's waits for it), so a modelled thread
/// applies them itself before it returns.
fn exit_deferred() {
    lease::flush();
}

#[test]
fn a_leased_value_is_freed_once_after_the_seal_and_every_lease() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut issuer = Issuer::new(Counted { drops: drops.clone(), data: UnsafeCell::new(7) });
        let (first, second) = (issuer.issue(), issuer.issue());
        let cloning = thread::spawn(move || {
            let again = first.clone();
            drop(first);
            assert_eq!(again.value().read(), 7, "alive while a lease is");
            drop(again);
            exit_deferred();
        });
        let dropping = thread::spawn(move || {
            assert_eq!(second.value().read(), 7);
            drop(second);
            exit_deferred();
        });
        // The seal races with both.
        drop(issuer);
        cloning.join().unwrap();
        dropping.join().unwrap();
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn deferred_drops_free_each_block_once_whichever_thread_applies_them() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let counted = |data| Counted { drops: drops.clone(), data: UnsafeCell::new(data) };
        let (mut first, mut second) = (Issuer::new(counted(1)), Issuer::new(counted(2)));
        let (of_first, of_second, kept) = (first.issue(), second.issue(), first.issue());
        let dropping = thread::spawn(move || {
            assert_eq!(of_first.value().read(), 1, "alive while a lease is");
            // Deferred while `first` is unsealed, applied by the next drop; that one is
            // deferred in turn, and applied as the thread exits.
            drop(of_first);
            assert_eq!(of_second.value().read(), 2, "alive while a lease is");
            drop(of_second);
            exit_deferred();
        });
        // The seals race with the other thread's drops.
        drop(first);
        assert_eq!(kept.value().read(), 1, "alive while a lease is");
        drop(kept);
        drop(second);
        dropping.join().unwrap();
        assert_eq!(drops.load(Ordering::Relaxed), 2, "each value freed once, after its last holder");
    });
}
