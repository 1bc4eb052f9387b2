//! The watch window: the most recent events, readable by any thread without a lock.
//!
//! The dispatcher appends; watches read. Events live in fixed-size chunks that are
//! written once, slot by slot, and never overwritten: a reader holding a chunk can read
//! every slot below the chunk's `filled` count without further synchronisation, and an
//! evicted chunk is freed when its last reader lets go. The list of live chunks is
//! republished (one `Arc` swap) only when a chunk is added or evicted, once per
//! [`CHUNK_LEN`] events. This is the "single writer, append-only log with immutable
//! segments" shape of LMAX's journal and of the Kubernetes cacher's `watchCache` ring,
//! with the segment swap taking the place of the cacher's lock.
//!
//! Retention is logical: events with revision `>= first` are replayable. `first` moves
//! as `capacity` demands; whole chunks below it are dropped. A reader that already holds
//! an evicted chunk may still finish reading it, which is never wrong: what it reads is
//! immutable and in order.
//!
//! Orderings, all in this file. The writer publishes in this order, each store
//! `Release`, and readers load in the reverse order, each load `Acquire`:
//! 1. a slot is written, then its chunk's `filled` is stored: a reader that loads
//!    `filled` may read every slot below it;
//! 2. on eviction, `first` moves forward before the chunk list without the evicted
//!    chunks is published: a reader that loaded a list missing a chunk, and then loads
//!    `first`, sees a `first` past that chunk. So `Evicted { first }` always has
//!    `first` above the revision asked for;
//! 3. a new chunk is in the published list before `head` moves into it: a reader that
//!    sees `head >= r` and then loads the list finds the chunk holding `r`, filled.
//!
//! `closed` is a `Release`/`Acquire` flag read by watches deciding between `Closed` and
//! waiting.

use crate::event::Record;
use crate::notify::WaitList;
use crate::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use crate::sync::{Arc, ArcCell, UnsafeCell};
use std::mem::MaybeUninit;
use std::time::Duration;

/// Events per chunk; small under loom so models cross chunk boundaries.
#[cfg(not(loom))]
pub(crate) const CHUNK_LEN: usize = 256;
#[cfg(loom)]
pub(crate) const CHUNK_LEN: usize = 2;

/// A run of `CHUNK_LEN` records, stored inline: one allocation per chunk rather than one
/// per event, and a reader walks them in order through memory.
pub(crate) struct Chunk<T> {
    /// Revision of slot 0.
    first: u64,
    /// Slots `0..filled` are initialised and never change again. Written by the
    /// appending writer only.
    filled: AtomicUsize,
    slots: Box<[UnsafeCell<MaybeUninit<Record<T>>>]>,
}

// SAFETY: a chunk hands out `&Record<T>` to readers on any thread and drops records
// on whichever thread frees it, so `Record<T>` must be `Send + Sync`, which holds when
// `T` is; slots are written once by one writer before `filled` publishes them.
unsafe impl<T: Send + Sync> Send for Chunk<T> {}
// SAFETY: as above; concurrent readers only read slots already published by `filled`.
unsafe impl<T: Send + Sync> Sync for Chunk<T> {}

impl<T> Chunk<T> {
    fn new(first: u64) -> Self {
        let slots = (0..CHUNK_LEN).map(|_| UnsafeCell::new(MaybeUninit::uninit())).collect();
        Self { first, filled: AtomicUsize::new(0), slots }
    }

    fn get(&self, revision: u64) -> Option<&Record<T>> {
        let index = usize::try_from(revision.checked_sub(self.first)?).ok()?;
        if index >= self.filled.load(Ordering::Acquire) {
            return None;
        }
        debug_assert!(index < self.slots.len());
        // SAFETY: `index < filled` (Acquire) means the slot was initialised and released
        // by the writer, and slots below `filled` are never written again; the reference
        // lives no longer than `&self`, which keeps the slot alive.
        Some(self.slots[index].with(|cell| unsafe { (*cell).assume_init_ref() }))
    }

    fn is_full(&self) -> bool {
        self.filled.load(Ordering::Relaxed) == CHUNK_LEN
    }

    /// Appends the next record.
    ///
    /// # Safety
    /// Only the window's single writer calls this, and the chunk is not full.
    unsafe fn push(&self, record: Record<T>) {
        let index = self.filled.load(Ordering::Relaxed);
        debug_assert!(index < self.slots.len());
        // SAFETY: slot `index` is at or past `filled`, so no reader touches it, and the
        // caller is the only writer.
        self.slots[index].with_mut(|cell| unsafe { (*cell).write(record) });
        self.filled.store(index + 1, Ordering::Release);
    }
}

impl<T> Drop for Chunk<T> {
    fn drop(&mut self) {
        let filled = self.filled.load(Ordering::Relaxed);
        for slot in &self.slots[..filled] {
            // SAFETY: `&mut self` is exclusive and slots below `filled` are initialised.
            slot.with_mut(|cell| unsafe { (*cell).assume_init_drop() });
        }
    }
}

/// How many events the window keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Capacity {
    /// Exactly this many (at least one).
    Fixed(usize),
    /// Kubernetes' sizing: start at `min`, double while the window would evict an event
    /// younger than `keep`, up to `max`.
    Growing { min: usize, max: usize, keep: Duration },
}

impl Capacity {
    pub(crate) const DEFAULT: Self = Self::Growing { min: 100, max: 102_400, keep: Duration::from_secs(75) };

    fn initial(self) -> usize {
        match self {
            Self::Fixed(events) => events.max(1),
            Self::Growing { min, .. } => min.max(1),
        }
    }
}

/// Where a read landed.
pub(crate) enum Read<'c, T> {
    /// The record at the requested revision, borrowed from the reader's cursor: reading
    /// touches no reference count, which every reader of a record would contend on.
    Record(&'c Record<T>),
    /// Not appended yet.
    Pending,
    /// Evicted; `first` is the oldest revision still held.
    Evicted { first: u64 },
}

/// The reading side, shared by every watch.
pub(crate) struct Window<T> {
    chunks: ArcCell<Vec<Arc<Chunk<T>>>>,
    /// The last appended revision (0 before the first).
    head: AtomicU64,
    /// The oldest replayable revision.
    first: AtomicU64,
    /// Set once the cacher shut down; `head` is final from then on.
    closed: AtomicBool,
    /// Watches waiting for `head` to move (or for `closed`).
    pub(crate) waiters: WaitList,
}

impl<T> std::fmt::Debug for Window<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window").field("first", &self.first()).field("head", &self.head()).finish()
    }
}

impl<T> Window<T> {
    pub(crate) fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    pub(crate) fn first(&self) -> u64 {
        self.first.load(Ordering::Acquire)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The record at `revision`, reusing `cursor`'s chunk when it holds it.
    pub(crate) fn read<'c>(&self, revision: u64, cursor: &'c mut Cursor<T>) -> Read<'c, T> {
        if cursor.chunk.as_ref().is_none_or(|chunk| chunk.get(revision).is_none()) {
            if let Err(miss) = self.seek(revision, cursor) {
                return miss;
            }
        }
        match cursor.chunk.as_ref().and_then(|chunk| chunk.get(revision)) {
            Some(record) => Read::Record(record),
            None => Read::Pending,
        }
    }

    /// Points `cursor` at the chunk holding `revision`; on a miss, says why (`Pending` or
    /// `Evicted`).
    fn seek<'c>(&self, revision: u64, cursor: &mut Cursor<T>) -> Result<(), Read<'c, T>> {
        if revision > self.head() {
            return Err(Read::Pending);
        }
        // Retention is logical: a seek never lands below `first`, even in a chunk that is
        // still listed.
        let first = self.first();
        if revision < first {
            return Err(Read::Evicted { first });
        }
        // Loaded after `head` (rule 3): the chunk holding `revision` is in this list,
        // unless it has been evicted since.
        let chunks = self.chunks.load();
        let found = chunks.first().and_then(|oldest| {
            let offset = revision.checked_sub(oldest.first)?;
            let index = usize::try_from(offset).ok()? / CHUNK_LEN;
            chunks.get(index).filter(|chunk| chunk.get(revision).is_some())
        });
        if let Some(chunk) = found {
            cursor.chunk = Some(chunk.clone());
            return Ok(());
        }
        // Loaded after the list (rule 2): an eviction that removed the chunk shows here.
        let first = self.first();
        if revision < first {
            return Err(Read::Evicted { first });
        }
        // Unreachable while the writer keeps rule 3; waiting is the safe answer if not.
        debug_assert!(false, "revision {revision} was appended but its chunk is not listed");
        Err(Read::Pending)
    }
}

/// A reader's position hint: the chunk it read last, so sequential reads skip the chunk
/// list. Holding it keeps at most that one chunk alive.
pub(crate) struct Cursor<T> {
    chunk: Option<Arc<Chunk<T>>>,
}

impl<T> Cursor<T> {
    pub(crate) fn new() -> Self {
        Self { chunk: None }
    }
}

impl<T> std::fmt::Debug for Cursor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor").field("chunk_first", &self.chunk.as_ref().map(|chunk| chunk.first)).finish()
    }
}

/// A record just appended, kept readable through its chunk even if a later append
/// evicts that chunk.
pub(crate) struct Appended<T> {
    chunk: Arc<Chunk<T>>,
    revision: u64,
}

impl<T> std::ops::Deref for Appended<T> {
    type Target = Record<T>;

    fn deref(&self) -> &Record<T> {
        self.chunk.get(self.revision).expect("an appended record stays in its chunk")
    }
}

/// The writing side: owned by the dispatcher alone (not `Clone`).
pub(crate) struct WindowWriter<T> {
    window: Arc<Window<T>>,
    /// The writer's own copy of the published chunk list.
    chunks: Vec<Arc<Chunk<T>>>,
    policy: Capacity,
    capacity: usize,
}

impl<T> std::fmt::Debug for WindowWriter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowWriter")
            .field("capacity", &self.capacity)
            .field("window", &self.window)
            .finish()
    }
}

impl<T> WindowWriter<T> {
    /// A new, empty window whose first event will be revision `next`.
    pub(crate) fn new(policy: Capacity, next: u64) -> Self {
        let window = Arc::new(Window {
            chunks: ArcCell::new(Arc::new(Vec::new())),
            head: AtomicU64::new(next - 1),
            first: AtomicU64::new(next),
            closed: AtomicBool::new(false),
            waiters: WaitList::new(),
        });
        Self { window, chunks: Vec::new(), policy, capacity: policy.initial() }
    }

    pub(crate) fn reader(&self) -> Arc<Window<T>> {
        self.window.clone()
    }

    /// The number of events currently replayable.
    pub(crate) fn len(&self) -> u64 {
        (self.window.head() + 1).saturating_sub(self.window.first())
    }

    /// Appends `record`, whose revision must be `head + 1`, evicting what capacity
    /// demands; publishes in the order the module docs give.
    pub(crate) fn append(&mut self, record: Record<T>) {
        let revision = record.revision;
        debug_assert_eq!(revision, self.window.head() + 1);
        let now = record.applied_at;
        let mut republish = false;
        if self.chunks.last().is_none_or(|chunk| chunk.is_full()) {
            self.chunks.push(Arc::new(Chunk::new(revision)));
            republish = true;
        }
        let last = self.chunks.last().expect("a chunk was just ensured");
        // SAFETY: the dispatcher owns the only `WindowWriter`, and the chunk is not full.
        unsafe { last.push(record) };
        republish |= self.evict(revision, now);
        if republish {
            self.window.chunks.store(Arc::new(self.chunks.clone()));
        }
        self.window.head.store(revision, Ordering::Release);
    }

    /// The last appended record, readable through its chunk even if a later append
    /// evicts that chunk.
    ///
    /// # Panics
    /// If nothing was appended yet.
    pub(crate) fn last(&self) -> Appended<T> {
        let chunk = self.chunks.last().expect("a record was appended").clone();
        Appended { chunk, revision: self.window.head() }
    }

    /// Moves `first` so that at most `capacity` events stay (counting `head`, appended
    /// but not yet published), growing the capacity instead while the event to evict is
    /// younger than the policy's `keep`. Returns whether a chunk was dropped; the caller
    /// republishes the list, after this has stored `first`.
    fn evict(&mut self, head: u64, now: Duration) -> bool {
        let mut first = self.window.first();
        while head + 1 - first > self.capacity as u64 {
            if let Capacity::Growing { max, keep, .. } = self.policy {
                let young =
                    self.record(first).is_some_and(|oldest| now.saturating_sub(oldest.applied_at) < keep);
                if young && self.capacity < max {
                    self.capacity = (self.capacity * 2).min(max);
                    continue;
                }
            }
            first = head + 1 - self.capacity as u64;
        }
        self.window.first.store(first, Ordering::Release);
        // Chunks are in revision order, so the evicted ones are a prefix; looking only at
        // that prefix keeps an append O(1) however many chunks the window holds.
        let evicted = self.chunks.iter().take_while(|chunk| chunk.first + CHUNK_LEN as u64 <= first).count();
        self.chunks.drain(..evicted);
        evicted > 0
    }

    fn record(&self, revision: u64) -> Option<&Record<T>> {
        let oldest = self.chunks.first()?.first;
        let index = usize::try_from(revision.checked_sub(oldest)?).ok()? / CHUNK_LEN;
        self.chunks.get(index)?.get(revision)
    }

    /// Marks the window final: no event will follow `head`.
    pub(crate) fn close(&self) {
        self.window.closed.store(true, Ordering::Release);
        self.window.waiters.notify_all();
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn record(revision: u64, applied_at: Duration) -> Record<u64> {
        Record {
            revision,
            key: std::sync::Arc::from("k"),
            object: Some(std::sync::Arc::new(revision)),
            prev: None,
            applied_at,
        }
    }

    #[test]
    fn reads_evicts_and_frees_whole_chunks() {
        let events = CHUNK_LEN as u64 * 3;
        let mut writer = WindowWriter::new(Capacity::Fixed(CHUNK_LEN), 1);
        let window = writer.reader();
        let mut cursor = Cursor::new();
        let first = record(1, Duration::ZERO);
        let pinned = first.object.clone().expect("a put");
        writer.append(first);
        assert!(matches!(window.read(1, &mut cursor), Read::Record(r) if r.revision == 1));
        assert!(matches!(window.read(2, &mut cursor), Read::Pending));
        for revision in 2..=events {
            writer.append(record(revision, Duration::ZERO));
        }
        assert_eq!((window.first(), window.head()), (events - CHUNK_LEN as u64 + 1, events));
        let mut fresh = Cursor::new();
        assert!(matches!(window.read(1, &mut fresh), Read::Evicted { first } if first == window.first()));
        assert!(matches!(window.read(window.first(), &mut fresh), Read::Record(_)));
        // The old cursor still holds the first chunk: reading it is never wrong.
        assert!(matches!(window.read(1, &mut cursor), Read::Record(_)));
        assert_eq!(std::sync::Arc::strong_count(&pinned), 2);
        drop(cursor);
        assert_eq!(std::sync::Arc::strong_count(&pinned), 1, "evicted chunk freed with its last reader");
    }

    #[test]
    fn growing_capacity_keeps_young_history() {
        let policy = Capacity::Growing { min: 2, max: 8, keep: Duration::from_secs(75) };
        let mut writer = WindowWriter::new(policy, 1);
        for revision in 1..=5 {
            writer.append(record(revision, Duration::from_secs(revision)));
        }
        assert_eq!((writer.capacity(), writer.len()), (8, 5), "grew instead of evicting young events");
        for revision in 6..=20 {
            writer.append(record(revision, Duration::from_secs(revision)));
        }
        assert_eq!((writer.capacity(), writer.len()), (8, 8), "capped at max");
        writer.append(record(21, Duration::from_secs(1000)));
        assert_eq!(writer.len(), 8, "old events are evicted once past the cap");
    }
}
