//! A bounded multi-producer ring with one consumer, closable.
//!
//! The algorithm is Dmitry Vyukov's bounded MPMC queue
//! (<https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue>), with
//! the consumer side simplified for a single consumer and a close bit folded into the
//! tail counter. It serves two roles: the cacher's incoming ring (many producers, the
//! dispatcher consumes) and each pushed watcher's buffer (the dispatcher produces, the
//! watch consumes).
//!
//! [`bounded`] returns the two halves. [`Sender`] is `Clone` and pushes from any thread;
//! [`Receiver`] is the one consumer: not `Clone`, and `pop` takes `&mut self`, so the
//! single-consumer rule the algorithm relies on is the type system's to enforce.
//!
//! Every slot carries a stamp that says whose turn it is, for the position `pos` that
//! maps to it (`pos % capacity`):
//! - `stamp == 2·pos`: free for the producer that claims `pos`;
//! - `stamp == 2·pos + 1`: written, ready for the consumer at `pos`;
//! - `stamp == 2·(pos + capacity)`: read, free for the producer one lap later.
//!
//! Vyukov's original uses `pos` and `pos + 1`, which coincide for a one-slot ring
//! ("written at `pos`" would read as "free at `pos + 1`"); doubling keeps the states
//! apart for every capacity, and a one-event watcher buffer is a real configuration.
//! Positions are `u64` counters on every target, so they never wrap in practice: the top
//! bit of `tail` is the close flag, and `2·(pos + capacity)` stays below 2^64 for the
//! first 2^62 positions (146 years at a billion operations a second).
//!
//! Orderings, all in this file:
//! - a producer claims a position with a `Relaxed` CAS on `tail`: the claim only needs
//!   to be unique; the data hand-off is carried by the slot's stamp;
//! - a producer writes the value, then stores `stamp = 2·pos + 1` with `Release`; the
//!   consumer loads the stamp with `Acquire` before reading the value (message passing);
//! - the consumer reads the value, then stores `stamp = 2·(pos + capacity)` with
//!   `Release`; a producer loads the stamp with `Acquire` before overwriting the slot,
//!   so the read happens before the next write;
//! - `head` is written only by the consumer; it is published `Release` so `len()`
//!   readers see a position no newer than the freed slots;
//! - closing is a `fetch_or` on `tail` (`AcqRel`): a producer's CAS either precedes it
//!   (the change is in the ring and will be drained) or observes the bit and fails, so
//!   no accepted change is lost.

use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{Arc, UnsafeCell};
use crossbeam_utils::CachePadded;
use std::mem::MaybeUninit;

/// The top bit of `tail`: set once the ring is closed to producers.
const CLOSED: u64 = 1 << 63;

/// Why a value was not pushed; the value comes back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushError<T> {
    Full(T),
    Closed(T),
}

struct Slot<T> {
    /// Whose turn it is (see the module docs).
    stamp: AtomicU64,
    /// Initialised exactly when `stamp == 2·pos + 1` for the position `pos` mapping here.
    value: UnsafeCell<MaybeUninit<T>>,
}

/// The ring both halves share.
struct Ring<T> {
    slots: Box<[Slot<T>]>,
    /// Next position to read. Written only by the [`Receiver`].
    head: CachePadded<AtomicU64>,
    /// Next position to claim, with [`CLOSED`] set once closed. Advanced by producers' CAS.
    tail: CachePadded<AtomicU64>,
}

// SAFETY: values move from the producing thread to the consuming thread, so `T: Send` is
// required and sufficient; the slot protocol gives each value one owner at a time.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: shared access only moves values in and out through the slot protocol; no `&T`
// is ever handed out, so `T: Sync` is not needed.
unsafe impl<T: Send> Sync for Ring<T> {}

/// A ring holding up to `capacity` values (at least one), as its two halves.
pub(crate) fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let capacity = capacity.max(1);
    let slots = (0..capacity as u64)
        .map(|pos| Slot { stamp: AtomicU64::new(2 * pos), value: UnsafeCell::new(MaybeUninit::uninit()) })
        .collect();
    let ring = Arc::new(Ring {
        slots,
        head: CachePadded::new(AtomicU64::new(0)),
        tail: CachePadded::new(AtomicU64::new(0)),
    });
    (Sender { ring: ring.clone() }, Receiver { ring })
}

impl<T> Ring<T> {
    fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn slot(&self, pos: u64) -> &Slot<T> {
        // The remainder is below the capacity, a `usize`, so the cast is lossless.
        let index = (pos % self.slots.len() as u64) as usize;
        debug_assert!(index < self.slots.len());
        &self.slots[index]
    }

    fn is_closed(&self) -> bool {
        self.tail.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Positions claimed but not yet popped: values ready, plus values a producer is
    /// still writing. Capped at the capacity: the consumer frees a slot before it
    /// advances `head`, so for a moment a producer may claim a position a full lap ahead.
    fn len(&self) -> usize {
        let tail = self.tail.load(Ordering::Acquire) & !CLOSED;
        let head = self.head.load(Ordering::Acquire);
        let len = tail.saturating_sub(head).min(self.slots.len() as u64);
        len as usize
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed) & !CLOSED;
        for pos in head..tail {
            let slot = self.slot(pos);
            if slot.stamp.load(Ordering::Relaxed) == 2 * pos + 1 {
                // SAFETY: `&mut self` excludes every other access, and `stamp == 2·pos + 1`
                // says the slot holds an initialised value nobody has read.
                slot.value.with_mut(|cell| unsafe { (*cell).assume_init_drop() });
            }
        }
    }
}

/// The producing half: `Clone`, pushes from any thread.
pub(crate) struct Sender<T> {
    ring: Arc<Ring<T>>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Self { ring: self.ring.clone() }
    }
}

impl<T> Sender<T> {
    /// Adds `value` at the tail without waiting.
    pub(crate) fn push(&self, value: T) -> Result<(), PushError<T>> {
        let ring = &*self.ring;
        let mut tail = ring.tail.load(Ordering::Relaxed);
        loop {
            if tail & CLOSED != 0 {
                return Err(PushError::Closed(value));
            }
            let slot = ring.slot(tail);
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == 2 * tail {
                match ring.tail.compare_exchange_weak(tail, tail + 1, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => {
                        // SAFETY: the CAS made this producer the only owner of position
                        // `tail`, and `stamp == 2·tail` (Acquire) shows the consumer
                        // finished reading the slot's previous value.
                        slot.value.with_mut(|cell| unsafe { (*cell).write(value) });
                        slot.stamp.store(2 * tail + 1, Ordering::Release);
                        return Ok(());
                    }
                    Err(current) => tail = current,
                }
            } else if stamp < 2 * tail {
                // The slot still holds the value from one lap ago: full, unless the
                // consumer has moved on since we read `tail`.
                let current = ring.tail.load(Ordering::Relaxed);
                if current == tail {
                    return Err(PushError::Full(value));
                }
                tail = current;
            } else {
                // Another producer claimed this position; try the newest tail.
                tail = ring.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Closes the ring to producers; values already accepted stay and can be popped.
    pub(crate) fn close(&self) {
        self.ring.tail.fetch_or(CLOSED, Ordering::AcqRel);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.ring.is_closed()
    }

    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.ring.capacity()
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("capacity", &self.capacity()).field("len", &self.len()).finish()
    }
}

/// The consuming half: one per ring, not `Clone`.
pub(crate) struct Receiver<T> {
    ring: Arc<Ring<T>>,
}

impl<T> Receiver<T> {
    /// Removes the value at the head, if one is ready.
    pub(crate) fn pop(&mut self) -> Option<T> {
        let ring = &*self.ring;
        let head = ring.head.load(Ordering::Relaxed);
        let slot = ring.slot(head);
        if slot.stamp.load(Ordering::Acquire) != 2 * head + 1 {
            return None;
        }
        // SAFETY: `stamp == 2·head + 1` (Acquire) means the producer wrote the value and
        // released it; `&mut self` on the only `Receiver` means nobody else reads this
        // position.
        let value = slot.value.with(|cell| unsafe { (*cell).assume_init_read() });
        slot.stamp.store(2 * (head + ring.slots.len() as u64), Ordering::Release);
        ring.head.store(head + 1, Ordering::Release);
        Some(value)
    }

    /// Whether `pop` would return a value now. Unlike `len() > 0`, false while the next
    /// position is claimed but its producer is still writing it: a consumer deciding
    /// whether to sleep may sleep then, since that producer wakes it once it has written.
    pub(crate) fn has_ready(&self) -> bool {
        let head = self.ring.head.load(Ordering::Relaxed);
        self.ring.slot(head).stamp.load(Ordering::Acquire) == 2 * head + 1
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.ring.is_closed()
    }

    /// See [`Ring::len`]; after `close`, the consumer drains until this reaches zero.
    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("len", &self.len()).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn fifo_capacity_and_close() {
        let (sender, mut receiver) = bounded(3);
        for i in 0..3 {
            sender.push(i).unwrap();
        }
        assert_eq!(sender.push(9), Err(PushError::Full(9)));
        assert_eq!(receiver.pop(), Some(0));
        sender.push(3).unwrap();
        sender.close();
        assert_eq!(sender.push(4), Err(PushError::Closed(4)));
        assert_eq!(receiver.len(), 3);
        let drained: Vec<_> = std::iter::from_fn(|| receiver.pop()).collect();
        assert_eq!(drained, vec![1, 2, 3]);
        assert_eq!(receiver.len(), 0);
    }

    #[test]
    fn one_slot_ring_holds_one_value() {
        let (sender, mut receiver) = bounded(1);
        sender.push(1).unwrap();
        assert_eq!(sender.push(2), Err(PushError::Full(2)));
        assert_eq!(receiver.pop(), Some(1));
        sender.push(3).unwrap();
        assert_eq!(sender.push(4), Err(PushError::Full(4)));
        assert_eq!(receiver.pop(), Some(3));
    }

    #[test]
    fn drop_releases_unread_values() {
        let value = std::sync::Arc::new(());
        let (sender, mut receiver) = bounded(4);
        sender.push(value.clone()).unwrap();
        sender.push(value.clone()).unwrap();
        drop(receiver.pop());
        drop((sender, receiver));
        assert_eq!(std::sync::Arc::strong_count(&value), 1);
    }

    #[test]
    fn positions_pass_2_pow_32_on_every_target() {
        // A ring whose counters start just below 2^31 and run past 2^32. With `usize`
        // positions a 32-bit target would read the ring as closed at 2^31 (the close bit)
        // and wrap at 2^32; CI runs this under Miri for i686 as well as natively.
        let (sender, mut receiver) = bounded::<u64>(2);
        for start in [(1 << 31) - 3, (1 << 32) - 3] {
            let ring = &sender.ring;
            ring.head.store(start, Ordering::Relaxed);
            ring.tail.store(start, Ordering::Relaxed);
            for pos in start..start + 2 {
                ring.slot(pos).stamp.store(2 * pos, Ordering::Relaxed);
            }
            for value in 0..6 {
                sender.push(value).unwrap();
                assert_eq!(receiver.pop(), Some(value));
            }
            assert!(!sender.is_closed());
            assert_eq!(ring.head.load(Ordering::Relaxed), start + 6);
        }
    }
}
