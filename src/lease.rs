//! A shared hold on a value whose one issuer hands out references without an atomic
//! operation, and whose holders on one thread drop them without one either: the count of
//! a window chunk's owned events (see `window.rs`).
//!
//! A watch reading the window makes an owned event per record it yields, each of which
//! must keep the record's chunk alive. An `Arc` per event would cost a locked increment
//! per event, on a line no other core shares but that the store buffer must drain for,
//! and a locked decrement when the event is dropped. Instead:
//!
//! - The watch's cursor *issues* [`Lease`]s on one [`Issuer`] per chunk it reads: it
//!   counts what it issued in a plain integer, and adds that to the shared count once,
//!   when it moves on to another chunk ([`Issuer`]'s drop, the *seal*).
//! - A thread that drops a lease *defers* the decrement while the block's issuer has not
//!   sealed: it counts the drops of one block in a thread-local integer, and subtracts
//!   them from the shared count in one operation when it drops a lease of another block,
//!   seals an issuer, or exits. A consumer that drops its events as it goes (the usual
//!   loop) so pays one atomic operation per chunk, not per event.
//!
//! This is biased reference counting (Choi, Shull and Torrellas, "Biased Reference
//! Counting", PACT 2018) in two deferred halves: the owner's increments are private until
//! it lets go (here the owner never decrements, so its private count only grows and is
//! merged once), and each thread's decrements are private until it moves on.
//!
//! # The count
//!
//! `holders` starts at [`UNSEALED`], a bias larger than any number of leases, and holds
//! `UNSEALED + clones − applied drops` until the seal subtracts `UNSEALED − issued`,
//! leaving the number of leases not yet dropped plus the drops some thread still defers.
//! Before the seal it cannot reach zero (drops never exceed `issued + clones`, and
//! `issued < UNSEALED / 2`); after it, it falls to zero exactly once, and whoever takes it
//! there (the seal, a lease's drop, or a thread applying its deferred drops) frees the
//! block.
//!
//! # Deferral and when a block is freed
//!
//! A deferred drop only postpones a decrement, so it never frees anything early. It can
//! free late: a block is freed once its seal and every drop are applied, and a thread's
//! deferred drops are applied when that thread drops a lease of another block, seals, or
//! exits. A thread starts deferring a block's drops only while the block is unsealed (the
//! drop that would start it sees the seal in the count, and is applied at once instead),
//! and its own seals apply what it defers; so deferral lasts past a seal only when the
//! seal ran on another thread meanwhile. The thread's later drops of that block join the
//! deferred ones, and at most one block per thread waits for that thread's next flush.
//! A block holds one window chunk, which the window frees only once no block holds it.
//!
//! Orderings, all in this file, as `std::sync::Arc` chooses them: a clone adds with
//! `Relaxed` (a holder exists, so the block cannot be freed meanwhile); the seal and
//! every applied drop subtract with `Release`, so that each holder's reads of the value
//! happen before the free (a deferred drop's reads precede, on its thread, the
//! subtraction that applies it); the one that reaches zero then loads the count with
//! `Acquire` before freeing (a load where `Arc` has a fence: the same edge, and one
//! ThreadSanitizer sees). The check for the seal before deferring is a `Relaxed` load: a
//! stale answer only defers a drop that could have been applied, or applies one that
//! could have been deferred.

use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::thread_local;
use std::cell::Cell;
use std::ptr::NonNull;

/// The bias `holders` carries until the issuer seals the block.
const UNSEALED: usize = usize::MAX / 2;

/// The block leases point to. `holders` comes first (`repr(C)`), so that a thread's
/// deferred drops can name a block by its count whatever the value's type.
#[repr(C)]
struct Block<P> {
    /// `UNSEALED + clones − applied drops` until the seal; after it, the leases not yet
    /// dropped plus the drops still deferred (module docs).
    holders: AtomicUsize,
    value: P,
}

/// Hands out leases on one value: owned by one reader (not `Clone`, not shared), which
/// counts what it issues without atomics.
pub(crate) struct Issuer<P> {
    block: NonNull<Block<P>>,
    /// Leases issued so far; below `UNSEALED / 2`.
    issued: usize,
}

/// A hold on the value an [`Issuer`] shares; any thread may clone or drop it.
pub(crate) struct Lease<P> {
    block: NonNull<Block<P>>,
}

// SAFETY: an issuer gives shared access to `P` (through the leases it issues, which may
// go to other threads) and may free it on whichever thread seals last; that is `Arc<P>`'s
// contract, which needs `P: Send + Sync`.
unsafe impl<P: Send + Sync> Send for Issuer<P> {}
// SAFETY: `&Issuer` only reads `P` (`issue` takes `&mut self`).
unsafe impl<P: Send + Sync> Sync for Issuer<P> {}
// SAFETY: as for `Arc<P>`: a lease shares `P` and may free it on any thread.
unsafe impl<P: Send + Sync> Send for Lease<P> {}
// SAFETY: as for `Arc<P>`: `&Lease` gives `&P`, and clones go to any thread.
unsafe impl<P: Send + Sync> Sync for Lease<P> {}

impl<P> Issuer<P> {
    pub(crate) fn new(value: P) -> Self {
        let block = Box::new(Block { holders: AtomicUsize::new(UNSEALED), value });
        Self { block: NonNull::from(Box::leak(block)), issued: 0 }
    }

    /// One more lease, counted here without an atomic operation.
    pub(crate) fn issue(&mut self) -> Lease<P> {
        self.issued += 1;
        debug_assert!(self.issued < UNSEALED / 2);
        Lease { block: self.block }
    }
}

impl<P> Drop for Issuer<P> {
    /// The seal: adds the leases issued to the shared count and lets go of the bias,
    /// after applying this thread's deferred drops (those of this block among them).
    fn drop(&mut self) {
        flush();
        Drops { holders: self.block.cast(), count: UNSEALED - self.issued, free: free::<P> }.apply();
    }
}

impl<P> Lease<P> {
    pub(crate) fn value(&self) -> &P {
        // SAFETY: this lease is counted in `holders` (issued, or added by a clone) and
        // not yet dropped, so the block is alive.
        unsafe { &self.block.as_ref().value }
    }

    fn holders(&self) -> &AtomicUsize {
        // SAFETY: as in `value`.
        unsafe { &self.block.as_ref().holders }
    }
}

impl<P> Clone for Lease<P> {
    fn clone(&self) -> Self {
        // `Relaxed`: this lease keeps the block alive while the count grows.
        let previous = self.holders().fetch_add(1, Ordering::Relaxed);
        // As `Arc` does: a count near overflow means leaked leases; stop before it wraps.
        if previous > usize::MAX - UNSEALED / 2 {
            std::process::abort();
        }
        Self { block: self.block }
    }
}

impl<P> Drop for Lease<P> {
    fn drop(&mut self) {
        let drop_now = Drops { holders: self.block.cast(), count: 1, free: free::<P> };
        // Deferral starts only while the issuer has not sealed: a first drop after the
        // seal may be the last, and is applied at once. `try_with`: during thread exit,
        // after this thread's deferred drops were applied, the drop is applied at once.
        let deferred = DEFERRED.try_with(|deferred| {
            deferred.defer(drop_now, || self.holders().load(Ordering::Relaxed) > UNSEALED / 2)
        });
        if !deferred.unwrap_or(false) {
            drop_now.apply();
        }
    }
}

/// `count` drops of the block whose count is `holders` (`holders` is the block's first
/// field), or its seal.
#[derive(Clone, Copy)]
struct Drops {
    holders: NonNull<AtomicUsize>,
    count: usize,
    /// Frees the block, once `holders` reached zero.
    free: unsafe fn(NonNull<AtomicUsize>),
}

impl Drops {
    /// Subtracts `count`, freeing the block if that took it to zero.
    fn apply(self) {
        // SAFETY: the block lives until its count reaches zero, and the `count` released
        // here are still in it.
        let holders = unsafe { self.holders.as_ref() };
        if holders.fetch_sub(self.count, Ordering::Release) == self.count {
            holders.load(Ordering::Acquire);
            // SAFETY: the count reached zero here: the seal is applied and no lease is
            // left, and nothing reads the block after.
            unsafe { (self.free)(self.holders) };
        }
    }
}

/// Frees the block whose count is `holders`.
///
/// # Safety
/// `holders` is the count of a live `Block<P>` from `Issuer::new`, which is freed here.
unsafe fn free<P>(holders: NonNull<AtomicUsize>) {
    // SAFETY: the caller's contract; the block came from `Box::leak`.
    drop(unsafe { Box::from_raw(holders.cast::<Block<P>>().as_ptr()) });
}

/// This thread's deferred drops: those of the last block it dropped a lease of while the
/// block's issuer had not sealed.
struct Deferred(Cell<Option<Drops>>);

impl Deferred {
    /// Adds `drop` to the deferred drops of its block; a drop of another block first asks
    /// `unsealed`, then applies the drops deferred so far and defers `drop` instead.
    /// `false` if `drop` must be applied at once.
    fn defer(&self, drop: Drops, unsealed: impl FnOnce() -> bool) -> bool {
        match self.0.get() {
            Some(mut same) if same.holders == drop.holders => {
                same.count += 1;
                self.0.set(Some(same));
                true
            }
            deferred => {
                if !unsealed() {
                    return false;
                }
                // Replaced before applied: freeing a block may drop leases, which defer.
                self.0.set(Some(drop));
                if let Some(deferred) = deferred {
                    deferred.apply();
                }
                true
            }
        }
    }

    fn flush(&self) {
        if let Some(deferred) = self.0.take() {
            deferred.apply();
        }
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        self.flush();
    }
}

// Loom's `thread_local!` takes no `const` initialiser, which spares std's the lazy
// initialisation check on every drop.
#[cfg(not(loom))]
thread_local! {
    static DEFERRED: Deferred = const { Deferred(Cell::new(None)) };
}
#[cfg(loom)]
thread_local! {
    static DEFERRED: Deferred = Deferred(Cell::new(None));
}

/// Applies this thread's deferred drops, as its exit would.
pub(crate) fn flush() {
    // During thread exit the deferred drops were applied already.
    let _ = DEFERRED.try_with(Deferred::flush);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Issuer, Lease};
    use std::sync::Arc;

    /// A value whose last reference says when it is freed.
    fn tracked() -> (Arc<u64>, std::sync::Weak<u64>) {
        let value = Arc::new(7);
        let freed = Arc::downgrade(&value);
        (value, freed)
    }

    #[test]
    fn the_value_lives_until_the_seal_and_the_last_lease() {
        let (value, freed) = tracked();
        let mut issuer = Issuer::new(value);
        let leases: Vec<Lease<Arc<u64>>> = (0..3).map(|_| issuer.issue()).collect();
        let clone = leases[1].clone();
        drop(leases);
        assert!(freed.upgrade().is_some(), "the issuer still holds it");
        drop(issuer);
        assert!(freed.upgrade().is_some(), "a clone still holds it");
        assert!(Arc::ptr_eq(clone.value(), &freed.upgrade().unwrap()));
        drop(clone);
        assert!(freed.upgrade().is_none(), "freed with the last lease");
    }

    #[test]
    fn a_seal_with_nothing_outstanding_frees_at_once() {
        let (value, freed) = tracked();
        let mut issuer = Issuer::new(value);
        drop(issuer.issue());
        drop(issuer);
        assert!(freed.upgrade().is_none(), "the seal applies its own thread's deferred drop");
        let (value, freed) = tracked();
        drop(Issuer::new(value));
        assert!(freed.upgrade().is_none(), "an issuer that issued nothing");
    }

    /// A thread that drops what it is sent, reporting each drop done.
    struct Dropper {
        send: std::sync::mpsc::Sender<Lease<Arc<u64>>>,
        dropped: std::sync::mpsc::Receiver<()>,
        thread: std::thread::JoinHandle<()>,
    }

    impl Dropper {
        fn spawn() -> Self {
            let (send, leases) = std::sync::mpsc::channel::<Lease<Arc<u64>>>();
            let (done, dropped) = std::sync::mpsc::channel();
            let thread = std::thread::spawn(move || {
                for lease in leases {
                    drop(lease);
                    done.send(()).unwrap();
                }
            });
            Self { send, dropped, thread }
        }

        fn drop_there(&self, lease: Lease<Arc<u64>>) {
            self.send.send(lease).unwrap();
            self.dropped.recv().unwrap();
        }

        fn exit(self) {
            drop(self.send);
            self.thread.join().unwrap();
        }
    }

    #[test]
    fn a_drop_deferred_past_a_seal_elsewhere_applies_at_the_next_block() {
        let dropper = Dropper::spawn();
        let (value, freed) = tracked();
        let mut issuer = Issuer::new(value);
        let (first, second, third) = (issuer.issue(), issuer.issue(), issuer.issue());
        dropper.drop_there(first);
        drop(issuer);
        drop(second);
        dropper.drop_there(third);
        assert!(freed.upgrade().is_some(), "the other thread defers its drops, the later one too");
        let (other, other_freed) = tracked();
        let mut other_issuer = Issuer::new(other);
        dropper.drop_there(other_issuer.issue());
        assert!(freed.upgrade().is_none(), "applied when that thread dropped a lease of another block");
        drop(other_issuer);
        assert!(other_freed.upgrade().is_some(), "now the other block's drop is deferred");
        dropper.exit();
        assert!(other_freed.upgrade().is_none(), "applied when that thread exited");
    }

    #[test]
    fn a_drop_after_the_seal_applies_at_once() {
        let dropper = Dropper::spawn();
        let (value, freed) = tracked();
        let mut issuer = Issuer::new(value);
        let lease = issuer.issue();
        drop(issuer);
        dropper.drop_there(lease);
        assert!(freed.upgrade().is_none(), "the last lease, dropped after the seal");
        dropper.exit();
    }

    #[test]
    fn leases_dropped_on_other_threads_free_exactly_once() {
        let rounds = if cfg!(miri) { 4 } else { 200 };
        for _ in 0..rounds {
            let (value, freed) = tracked();
            let mut issuer = Issuer::new(value);
            let leases: Vec<_> = (0..4).map(|_| issuer.issue()).collect();
            let threads: Vec<_> = leases
                .into_iter()
                .map(|lease| {
                    std::thread::spawn(move || {
                        let again = lease.clone();
                        drop(lease);
                        // Read while the other threads drop theirs and the issuer seals:
                        // Miri reports it if the value was freed early.
                        assert_eq!(**again.value(), 7);
                    })
                })
                .collect();
            drop(issuer);
            threads.into_iter().for_each(|thread| thread.join().unwrap());
            assert!(freed.upgrade().is_none());
        }
    }

    #[test]
    fn leases_of_many_blocks_interleaved_across_threads_free_each_value_once() {
        let (rounds, leases_per_block) = if cfg!(miri) { (2, 3) } else { (100, 64) };
        for _ in 0..rounds {
            let (values, freed): (Vec<_>, Vec<_>) = (0..4u64)
                .map(|block| {
                    let value = Arc::new(block);
                    let freed = Arc::downgrade(&value);
                    (value, freed)
                })
                .unzip();
            let mut issuers: Vec<_> = values.into_iter().map(Issuer::new).collect();
            let (senders, threads): (Vec<_>, Vec<_>) = (0..3)
                .map(|_| {
                    let (send, leases) = std::sync::mpsc::channel::<(u64, Lease<Arc<u64>>)>();
                    // Each thread's drops switch between blocks, defer, apply, and
                    // race with the seals; it reads each value as it drops the lease.
                    let thread = std::thread::spawn(move || {
                        for (block, lease) in leases {
                            assert_eq!(**lease.value(), block, "alive while a lease is");
                        }
                    });
                    (send, thread)
                })
                .unzip();
            for index in 0..leases_per_block {
                for (block, issuer) in issuers.iter_mut().enumerate() {
                    let thread = (index + block) % senders.len();
                    senders[thread].send((block as u64, issuer.issue())).unwrap();
                }
                if index == leases_per_block / 2 {
                    // Two blocks sealed while their leases are still being dropped.
                    issuers.truncate(2);
                }
            }
            drop(issuers);
            drop(senders);
            threads.into_iter().for_each(|thread| thread.join().unwrap());
            assert!(freed.iter().all(|freed| freed.upgrade().is_none()), "every value freed");
        }
    }
}
