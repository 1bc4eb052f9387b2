//! Loom models of the lock-free structures: every interleaving of a few operations on
//! tiny capacities. Run with
//! `RUSTFLAGS="--cfg loom" cargo test --lib --release loom_models`.

use crate::event::Record;
use crate::notify::{thread_waker, Parker, WaitList};
use crate::ring::{PushError, Ring};
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::{thread, Arc};
use crate::window::{Capacity, Cursor, Read, WindowWriter};
use std::time::Duration;

/// Pushes `value`, yielding while the ring is full.
fn push_until_accepted<T>(ring: &Ring<T>, mut value: T) {
    loop {
        match ring.push(value) {
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
fn pop_all<T>(ring: &Ring<T>, count: usize) -> Vec<T> {
    let mut received = Vec::new();
    while received.len() < count {
        // SAFETY: the calling thread is the model's only consumer.
        match unsafe { ring.pop() } {
            Some(value) => received.push(value),
            None => thread::yield_now(),
        }
    }
    received
}

#[test]
fn ring_two_producers_race_for_the_tail() {
    loom::model(|| {
        let ring = Arc::new(Ring::new(2));
        let producers: Vec<_> = (0..2)
            .map(|producer| {
                let ring = ring.clone();
                thread::spawn(move || push_until_accepted(&ring, producer))
            })
            .collect();
        let mut received = pop_all(&ring, 2);
        producers.into_iter().for_each(|producer| producer.join().unwrap());
        received.sort_unstable();
        assert_eq!(received, [0, 1]);
    });
}

/// One producer pushes `0..values` through a ring of `capacity`; the consumer must get
/// them all, in order.
fn hands_over_in_order(capacity: usize, values: u64) {
    loom::model(move || {
        let ring = Arc::new(Ring::new(capacity));
        let producer = {
            let ring = ring.clone();
            thread::spawn(move || (0..values).for_each(|value| push_until_accepted(&ring, value)))
        };
        assert_eq!(pop_all(&ring, values as usize), (0..values).collect::<Vec<_>>());
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
        let ring = Arc::new(Ring::new(2));
        let producer = {
            let ring = ring.clone();
            thread::spawn(move || ring.push(7).is_ok())
        };
        ring.close();
        let accepted = producer.join().unwrap();
        let mut drained = Vec::new();
        while ring.len() > 0 {
            // SAFETY: this thread is the only consumer.
            if let Some(value) = unsafe { ring.pop() } {
                drained.push(value);
            }
        }
        assert_eq!(drained, if accepted { vec![7] } else { vec![] });
    });
}

fn record(revision: u64) -> Record<u64> {
    Record {
        revision,
        key: std::sync::Arc::from("k"),
        object: Some(std::sync::Arc::new(revision)),
        prev: None,
        applied_at: Duration::ZERO,
    }
}

#[test]
fn window_reader_sees_appends_in_order_across_chunks() {
    loom::model(|| {
        let mut writer = WindowWriter::new(Capacity::Fixed(2), 1);
        let window = writer.reader();
        let reader = thread::spawn(move || {
            let mut cursor = Cursor::new();
            let mut next = 1;
            let mut evicted = false;
            for _ in 0..4 {
                match window.read(next, &mut cursor) {
                    Read::Record(record) => {
                        assert_eq!(record.revision, next);
                        assert_eq!(*record.object.as_deref().unwrap(), next);
                        next += 1;
                    }
                    Read::Pending => thread::yield_now(),
                    Read::Evicted { first } => {
                        assert!(first > next);
                        evicted = true;
                        break;
                    }
                }
            }
            (next, evicted)
        });
        for revision in 1..=3 {
            writer.append(record(revision));
        }
        let (next, _) = reader.join().unwrap();
        assert!(next <= 4);
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
