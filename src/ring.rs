//! A bounded multi-producer ring with one consumer at a time, closable.
//!
//! The algorithm is Dmitry Vyukov's bounded MPMC queue
//! (<https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue>), with
//! the consumer side simplified for a single consumer and a close bit folded into the
//! tail counter. It serves two roles: the cacher's incoming ring (many producers, the
//! dispatcher consumes) and each pushed watcher's buffer (the dispatcher produces, the
//! watch consumes).
//!
//! Every slot carries a stamp that says whose turn it is:
//! `stamp == 2·pos` — free for the producer that claims position `pos`;
//! `stamp == 2·pos + 1` — written, ready for the consumer at `pos`;
//! `stamp == 2·(pos + capacity)` — read, free for the producer one lap later.
//! Vyukov's original uses `pos` and `pos + 1`, which coincide for a one-slot ring
//! ("written at `pos`" would read as "free at `pos + 1`"); doubling keeps the states
//! apart for every capacity, and a one-event watcher buffer is a real configuration.
//! Positions are plain counters (`pos % capacity` picks the slot), so any capacity works
//! and `usize` never wraps in practice (2^62 operations).
//!
//! Orderings, all in this file:
//! - a producer claims a position with a `Relaxed` CAS on `tail`: the claim only needs
//!   to be unique; the data hand-off is carried by the slot's `seq`;
//! - a producer writes the value, then stores `seq = pos + 1` with `Release`; the consumer
//!   loads `seq` with `Acquire` before reading the value (message passing);
//! - the consumer reads the value, then stores `seq = pos + capacity` with `Release`; a
//!   producer loads `seq` with `Acquire` before overwriting the slot, so the read happens
//!   before the next write;
//! - `head` is written only by the consumer; it is published `Release` so `len()`
//!   readers see a position no newer than the freed slots;
//! - closing is a `fetch_or` on `tail` (`AcqRel`): a producer's CAS either precedes it
//!   (the change is in the ring and will be drained) or observes the bit and fails, so
//!   no accepted change is lost.

use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::UnsafeCell;
use crossbeam_utils::CachePadded;
use std::mem::MaybeUninit;

/// The top bit of `tail`: set once the ring is closed to producers.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// Why a value was not pushed; the value comes back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushError<T> {
    Full(T),
    Closed(T),
}

struct Slot<T> {
    /// Whose turn it is (see the module docs).
    seq: AtomicUsize,
    /// Initialised exactly when `seq == 2·pos + 1` for the position `pos` mapping here.
    value: UnsafeCell<MaybeUninit<T>>,
}

pub(crate) struct Ring<T> {
    slots: Box<[Slot<T>]>,
    /// Next position to read. Written only by the single consumer.
    head: CachePadded<AtomicUsize>,
    /// Next position to claim, with [`CLOSED`] set once closed. Advanced by producers' CAS.
    tail: CachePadded<AtomicUsize>,
}

// SAFETY: values move from the producing thread to the consuming thread, so `T: Send` is
// required and sufficient; the slot protocol gives each value one owner at a time.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: shared access only moves values in and out through the slot protocol; no `&T`
// is ever handed out, so `T: Sync` is not needed.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> Ring<T> {
    /// A ring holding up to `capacity` values (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let slots = (0..capacity)
            .map(|i| Slot { seq: AtomicUsize::new(2 * i), value: UnsafeCell::new(MaybeUninit::uninit()) })
            .collect();
        Self {
            slots,
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn slot(&self, pos: usize) -> &Slot<T> {
        let index = pos % self.slots.len();
        debug_assert!(index < self.slots.len());
        &self.slots[index]
    }

    /// Adds `value` at the tail without waiting.
    pub(crate) fn push(&self, value: T) -> Result<(), PushError<T>> {
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            if tail & CLOSED != 0 {
                return Err(PushError::Closed(value));
            }
            let slot = self.slot(tail);
            let seq = slot.seq.load(Ordering::Acquire);
            if seq == 2 * tail {
                match self.tail.compare_exchange_weak(tail, tail + 1, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => {
                        // SAFETY: the CAS made this producer the only owner of position
                        // `tail`, and `seq == 2·tail` (Acquire) shows the consumer
                        // finished reading the slot's previous value.
                        slot.value.with_mut(|cell| unsafe { (*cell).write(value) });
                        slot.seq.store(2 * tail + 1, Ordering::Release);
                        return Ok(());
                    }
                    Err(current) => tail = current,
                }
            } else if seq < 2 * tail {
                // The slot still holds the value from one lap ago: full, unless the
                // consumer has moved on since we read `tail`.
                let current = self.tail.load(Ordering::Relaxed);
                if current == tail {
                    return Err(PushError::Full(value));
                }
                tail = current;
            } else {
                // Another producer claimed this position; try the newest tail.
                tail = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Removes the value at the head, if one is ready.
    ///
    /// # Safety
    /// No other thread may call `pop` on this ring at the same time: the caller holds the
    /// consumer role (the dispatcher for the incoming ring, the `Watch` for its buffer).
    pub(crate) unsafe fn pop(&self) -> Option<T> {
        let head = self.head.load(Ordering::Relaxed);
        let slot = self.slot(head);
        if slot.seq.load(Ordering::Acquire) != 2 * head + 1 {
            return None;
        }
        // SAFETY: `seq == 2·head + 1` (Acquire) means the producer wrote the value and
        // released it; being the only consumer, nobody else reads this position.
        let value = slot.value.with(|cell| unsafe { (*cell).assume_init_read() });
        slot.seq.store(2 * (head + self.slots.len()), Ordering::Release);
        self.head.store(head + 1, Ordering::Release);
        Some(value)
    }

    /// Closes the ring to producers; values already accepted stay and can be popped.
    pub(crate) fn close(&self) {
        self.tail.fetch_or(CLOSED, Ordering::AcqRel);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.tail.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Positions claimed but not yet popped: values ready, plus values a producer is
    /// still writing. After `close`, the consumer drains until this reaches zero.
    ///
    /// Capped at the capacity: the consumer frees a slot before it advances `head`, so
    /// for a moment a producer may claim a position a full lap ahead of `head`.
    pub(crate) fn len(&self) -> usize {
        let tail = self.tail.load(Ordering::Acquire) & !CLOSED;
        let head = self.head.load(Ordering::Acquire);
        tail.saturating_sub(head).min(self.slots.len())
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed) & !CLOSED;
        for pos in head..tail {
            let slot = self.slot(pos);
            if slot.seq.load(Ordering::Relaxed) == 2 * pos + 1 {
                // SAFETY: `&mut self` excludes every other access, and `seq == 2·pos + 1`
                // says the slot holds an initialised value nobody has read.
                slot.value.with_mut(|cell| unsafe { (*cell).assume_init_drop() });
            }
        }
    }
}

impl<T> std::fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring").field("capacity", &self.capacity()).field("len", &self.len()).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn fifo_capacity_and_close() {
        let ring = Ring::new(3);
        for i in 0..3 {
            ring.push(i).unwrap();
        }
        assert_eq!(ring.push(9), Err(PushError::Full(9)));
        // SAFETY: this test is the only consumer.
        assert_eq!(unsafe { ring.pop() }, Some(0));
        ring.push(3).unwrap();
        ring.close();
        assert_eq!(ring.push(4), Err(PushError::Closed(4)));
        assert_eq!(ring.len(), 3);
        // SAFETY: this test is the only consumer.
        let drained: Vec<_> = std::iter::from_fn(|| unsafe { ring.pop() }).collect();
        assert_eq!(drained, vec![1, 2, 3]);
        assert_eq!(ring.len(), 0);
    }

    #[test]
    fn one_slot_ring_holds_one_value() {
        let ring = Ring::new(1);
        ring.push(1).unwrap();
        assert_eq!(ring.push(2), Err(PushError::Full(2)));
        // SAFETY: this test is the only consumer.
        assert_eq!(unsafe { ring.pop() }, Some(1));
        ring.push(3).unwrap();
        assert_eq!(ring.push(4), Err(PushError::Full(4)));
        // SAFETY: this test is the only consumer.
        assert_eq!(unsafe { ring.pop() }, Some(3));
    }

    #[test]
    fn drop_releases_unread_values() {
        let value = std::sync::Arc::new(());
        let ring = Ring::new(4);
        ring.push(value.clone()).unwrap();
        ring.push(value.clone()).unwrap();
        // SAFETY: this test is the only consumer.
        drop(unsafe { ring.pop() });
        drop(ring);
        assert_eq!(std::sync::Arc::strong_count(&value), 1);
    }
}
