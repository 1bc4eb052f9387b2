//! A shared hold on a value whose one issuer hands out references without an atomic
//! operation: the count of a window chunk's owned events (see `window.rs`).
//!
//! A watch reading the window makes an owned event per record it yields, each of which
//! must keep the record's chunk alive. An `Arc` per event would cost a locked increment
//! per event, on a line no other core shares but that the store buffer must drain for.
//! Instead the watch's cursor *issues* [`Lease`]s on one [`Issuer`] per chunk it reads:
//! it counts what it issued in a plain integer, and adds that to the shared count once,
//! when it moves on to another chunk ([`Issuer`]'s drop, the *seal*). A lease's drop is
//! the only atomic operation per event.
//!
//! This is the deferred half of biased reference counting (Choi, Shull and Torrellas,
//! "Biased Reference Counting", PACT 2018): the owner's increments are private until it
//! lets go; here the owner never decrements, so its private count only grows and is
//! merged once.
//!
//! # The count
//!
//! `holders` starts at [`UNSEALED`], a bias larger than any number of leases, and holds
//! `UNSEALED + clones − drops` until the seal subtracts `UNSEALED − issued`, leaving the
//! number of live leases. Before the seal it cannot reach zero (drops never exceed
//! `issued + clones`, and `issued < UNSEALED`); after it, it falls to zero exactly once,
//! and whoever takes it there (the seal, or a lease's drop) frees the block.
//!
//! Orderings, all in this file, as `std::sync::Arc` chooses them: a clone adds with
//! `Relaxed` (a holder exists, so the block cannot be freed meanwhile); the seal and
//! every drop subtract with `Release`, so that each holder's reads of the value happen
//! before the free; the one that reaches zero then loads with an `Acquire` fence before
//! freeing.

use crate::sync::atomic::{fence, AtomicUsize, Ordering};
use std::ptr::NonNull;

/// The bias `holders` carries until the issuer seals the block.
const UNSEALED: usize = usize::MAX / 2;

/// The block leases point to.
struct Block<P> {
    /// `UNSEALED + clones − drops` until the seal, the live leases after (module docs).
    holders: AtomicUsize,
    value: P,
}

/// Hands out leases on one value: owned by one reader (not `Clone`, not shared), which
/// counts what it issues without atomics.
pub(crate) struct Issuer<P> {
    block: NonNull<Block<P>>,
    /// Leases issued so far; below `UNSEALED`.
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
        debug_assert!(self.issued < UNSEALED);
        Lease { block: self.block }
    }
}

impl<P> Drop for Issuer<P> {
    /// The seal: adds the leases issued to the shared count and lets go of the bias.
    fn drop(&mut self) {
        let released = UNSEALED - self.issued;
        // SAFETY: the block lives until the count reaches zero, which it cannot before
        // this seal (module docs).
        let holders = unsafe { &self.block.as_ref().holders };
        if holders.fetch_sub(released, Ordering::Release) == released {
            fence(Ordering::Acquire);
            // SAFETY: the count reached zero here: no lease is left, and the issuer is
            // going; the block came from `Box::leak` in `new`.
            drop(unsafe { Box::from_raw(self.block.as_ptr()) });
        }
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
        if self.holders().fetch_sub(1, Ordering::Release) == 1 {
            fence(Ordering::Acquire);
            // SAFETY: the count reached zero here, after the seal (before it, it cannot):
            // this was the last holder; the block came from `Box::leak`.
            drop(unsafe { Box::from_raw(self.block.as_ptr()) });
        }
    }
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
        assert!(freed.upgrade().is_none());
        let (value, freed) = tracked();
        drop(Issuer::new(value));
        assert!(freed.upgrade().is_none(), "an issuer that issued nothing");
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
}
