//! The watch window: the most recent events, readable by any thread without a lock, and
//! the one place that maps revisions to positions.
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
//! # Positions and revisions
//!
//! Every record has a dense *position* (1, 2, 3, … in append order), which chunks,
//! cursors and pushed buffers use, and the *revision* it was applied at, which rides in
//! the record. Revisions never decrease along positions, but they may skip (an upstream
//! prefix sees only its own keys) and several consecutive records may share one (an
//! upstream transaction, a relist's difference); in embedded mode the two coincide.
//! Nothing outside this file turns one into the other: [`Window::position_after`] finds
//! where the records after a revision start by binary search over the chunks' bounds and
//! then within a chunk, as the Kubernetes `watchCache` searches its ring
//! (`getAllEventsSinceLocked`), and [`Window::state_at`] walks positions back to a
//! revision.
//!
//! Retention is logical: positions `>= first` are replayable, and every record with a
//! revision above `oldest` (the revision of the last evicted record) is among them.
//! `first` moves as `capacity` demands, but never past the records after the last
//! published revision, and never into the newest revision: a reader that lists the
//! published state and then watches from its revision always finds what follows it
//! (the window holds at most one batch beyond its capacity for this), and a transaction
//! or relist larger than the capacity is kept whole until a newer revision arrives, so a
//! reader that was caught up before it can read all of it. Whole chunks below `first`
//! are dropped. A reader that already holds an evicted chunk may still
//! finish reading it, which is never wrong: what it reads is immutable and in order.
//!
//! # The byte budget
//!
//! A window may also be bounded in bytes ([`ByteBudget`]): `first` then also moves while
//! its records weigh more than the limit, within the same two rules (so one revision
//! heavier than the limit is kept whole until a newer one arrives), and the budget wins
//! over a growing capacity's wish to keep 75 s. Moving `first` frees nothing until a
//! whole chunk is below it, so with a budget a chunk is sealed early, once its records
//! weigh a [`SEAL_SHARE`]th of the limit: chunks then vary in length, and a reader finds
//! the chunk holding a position by binary search over the chunks' first positions
//! rather than by division. What stays allocated is the budget, plus the evicted part
//! of the oldest chunk (under a `SEAL_SHARE`th of the limit and one record), plus what
//! readers' cursors hold of chunks already dropped from the list.
//!
//! Orderings, all in this file. The writer publishes in this order, each store
//! `Release`, and readers load in the reverse order, each load `Acquire`:
//! 1. a slot is written, then its chunk's `filled` is stored: a reader that loads
//!    `filled` may read every slot below it;
//! 2. on eviction, `oldest` and then `first` move forward before the chunk list without
//!    the evicted chunks is published: a reader that loaded a list missing a chunk, and
//!    then loads `first` (then `oldest`), sees values past that chunk. So a position
//!    found in a list that lost chunks is refused rather than taken for a boundary, and
//!    an eviction report always names an `oldest` above the revision asked for;
//! 3. a new chunk is in the published list before `head` moves into it: a reader that
//!    sees `head >= p` and then loads the list finds the chunk holding `p`, filled;
//! 4. `revision` is stored after the records of every revision up to it are appended
//!    (once per batch): a reader that loads `revision` and then searches the chunks finds
//!    them all.
//!
//! `closed` is a `Release`/`Acquire` flag read by watches deciding between `Closed` and
//! waiting. A relist's gap is published (an `Arc` swap) before the state at the relist's
//! revision, so a reader rolling back from that state sees it.

use crate::event::{Entry, Record, Side};
use crate::lease::{self, Issuer};
use crate::notify::WaitList;
use crate::store::Snapshot;
use crate::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use crate::sync::{Arc, ArcCell, UnsafeCell};
use crossbeam_utils::CachePadded;
use std::mem::MaybeUninit;
use std::time::Duration;

/// Events per chunk; small under loom so models cross chunk boundaries.
#[cfg(not(loom))]
pub(crate) const CHUNK_LEN: usize = 256;
#[cfg(loom)]
pub(crate) const CHUNK_LEN: usize = 2;

/// A run of up to `CHUNK_LEN` records, stored inline: one allocation per chunk rather
/// than one per event, and a reader walks them in order through memory. A chunk sealed
/// early by the byte budget ends at its last `filled` slot.
pub(crate) struct Chunk<T> {
    /// Position of slot 0.
    first: u64,
    /// Slots `0..filled` are initialised and never change again. Written by the
    /// appending writer only, once per record, so on a line of its own: its alignment
    /// also puts the `Arc`'s counts, which readers change as they move from chunk to
    /// chunk, on another line, leaving `first` and `slots`, which every reader's search
    /// and read load, on a line nobody writes.
    filled: CachePadded<AtomicUsize>,
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
        Self { first, filled: CachePadded::new(AtomicUsize::new(0)), slots }
    }

    /// The record at `position`, if this chunk holds it and it is published.
    fn get(&self, position: u64) -> Option<&Record<T>> {
        let index = usize::try_from(position.checked_sub(self.first)?).ok()?;
        if index >= self.filled.load(Ordering::Acquire) {
            return None;
        }
        Some(self.slot(index))
    }

    /// Slot `index`, which must be below a `filled` this thread loaded (`Acquire`).
    fn slot(&self, index: usize) -> &Record<T> {
        debug_assert!(index < self.slots.len());
        // SAFETY: the callers load `filled` (Acquire) and pass an index below it, so the
        // slot was initialised and released by the writer, and slots below `filled` are
        // never written again; the reference lives no longer than `&self`, which keeps
        // the slot alive.
        self.slots[index].with(|cell| unsafe { (*cell).assume_init_ref() })
    }

    /// How many of the chunk's leading records have a revision at most `revision`
    /// (revisions never decrease along a chunk).
    fn count_at_or_below(&self, revision: u64) -> usize {
        let filled = self.filled.load(Ordering::Acquire);
        let (mut low, mut high) = (0, filled);
        while low < high {
            let middle = low + (high - low) / 2;
            if self.slot(middle).revision <= revision {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }

    /// The revision of slot 0, if it is published.
    fn first_revision(&self) -> Option<u64> {
        self.get(self.first).map(|record| record.revision)
    }

    fn is_full(&self) -> bool {
        self.filled.load(Ordering::Relaxed) == CHUNK_LEN
    }

    /// The position after the chunk's last record, as its writer sees it.
    fn end(&self) -> u64 {
        self.first + self.filled.load(Ordering::Relaxed) as u64
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

/// With a byte budget, a chunk is sealed once its records weigh this share of the limit.
const SEAL_SHARE: usize = 8;

/// The byte bound on a window: at most `limit` bytes of records, each weighed by
/// `weigh` on its object (on the deleted object for a delete). An object's weight
/// counts once, on the record that wrote it: the next record of the key shares it as
/// its previous object.
pub(crate) struct ByteBudget<T> {
    pub(crate) limit: usize,
    pub(crate) weigh: WeighFn<T>,
}

/// What an object weighs, in bytes, by the user's measure.
pub(crate) type WeighFn<T> = std::sync::Arc<dyn Fn(&T) -> usize + Send + Sync>;

impl<T> ByteBudget<T> {
    fn weight(&self, record: &Record<T>) -> usize {
        record.object.as_deref().or(record.prev.as_deref()).map_or(0, |object| (self.weigh)(object))
    }
}

/// A byte budget as the writer keeps it.
struct Weighed<T> {
    budget: ByteBudget<T>,
    /// What the records `first..=head` weigh.
    held: usize,
    /// What the last chunk's records weigh; at `budget.limit / SEAL_SHARE` or more, the
    /// next record starts a new chunk.
    last_chunk: usize,
}

/// The chunk of `chunks` (in position order) whose positions include `position`, if it
/// is listed: a binary search, as chunks sealed early by a byte budget vary in length.
fn chunk_holding<T>(chunks: &[Arc<Chunk<T>>], position: u64) -> Option<&Arc<Chunk<T>>> {
    let after = chunks.partition_point(|chunk| chunk.first <= position);
    chunks[..after].last()
}

/// An owned event's hold on the window chunk its record lies in ([`crate::Entry`]),
/// issued by the reading watch's cursor (see `lease.rs`): making one costs no atomic
/// operation, dropping one on the thread that reads usually none either, and neither
/// touches a count the other readers of the chunk share.
pub(crate) struct Lease<T>(lease::Lease<Arc<Chunk<T>>>);

impl<T> Clone for Lease<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Lease<T> {
    /// The record at `position`, which the reader that issued this lease read.
    ///
    /// # Panics
    /// If the chunk does not hold `position` published: a lease is only issued with a
    /// position read through it.
    pub(crate) fn record(&self, position: u64) -> &Record<T> {
        self.0.value().get(position).expect("a leased record is published in its chunk")
    }
}

/// What issues a reader's leases on one chunk.
type ChunkIssuer<T> = Issuer<Arc<Chunk<T>>>;

/// A record read through a cursor: the record, its chunk and its position, borrowed, and
/// the cursor's issuer of leases on the chunk (made by the first lease), lent.
pub(crate) struct Slot<'c, T> {
    record: &'c Record<T>,
    chunk: &'c Arc<Chunk<T>>,
    issuer: &'c mut Option<ChunkIssuer<T>>,
    position: u64,
}

impl<T> std::ops::Deref for Slot<'_, T> {
    type Target = Record<T>;

    fn deref(&self) -> &Record<T> {
        self.record
    }
}

impl<'c, T> Slot<'c, T> {
    /// The record, for as long as the cursor lends it.
    pub(crate) fn record(&self) -> &'c Record<T> {
        self.record
    }

    /// An owned entry of the record's `side` object, holding a lease on its chunk.
    pub(crate) fn entry(&mut self, side: Side) -> Entry<T> {
        let issuer = self.issuer.get_or_insert_with(|| Issuer::new(self.chunk.clone()));
        Entry::leased(Lease(issuer.issue()), self.position, side)
    }
}

/// Where a read landed.
pub(crate) enum Read<'c, T> {
    /// The record at the requested position, borrowed from the reader's cursor: reading
    /// touches no reference count, which every reader of a record would contend on.
    Record(Slot<'c, T>),
    /// Not appended yet.
    Pending,
    /// Evicted; [`Window::oldest`] says how far back a reader may start now.
    Evicted,
}

/// Why the state at a past revision cannot be rebuilt; `oldest` is a revision it can be
/// rebuilt at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unrecorded {
    pub(crate) oldest: u64,
}

/// The reading side, shared by every watch.
pub(crate) struct Window<T> {
    chunks: ArcCell<Vec<Arc<Chunk<T>>>>,
    /// The last appended position (0 before the first).
    head: AtomicU64,
    /// The oldest replayable position.
    first: AtomicU64,
    /// Every record with a revision above this one is replayable: the revision of the
    /// last evicted record, or the revision the window started at.
    oldest: AtomicU64,
    /// The cacher's revision: every record at or below it is appended. Includes
    /// revisions reached with no record (progress, deletes of missing keys). Stored once
    /// per batch, after its records.
    revision: AtomicU64,
    /// Relists' gaps, oldest first: `(from, to)` where a relist at `to` replaced the state
    /// at `from`, so the state at any revision strictly between is unknown. Only gaps that
    /// end above `oldest` are kept (older ones can no longer be asked about).
    gaps: ArcCell<Vec<(u64, u64)>>,
    /// Set once the cacher shut down; `head` is final from then on.
    closed: AtomicBool,
    /// Watches waiting for `head` or `revision` to move (or for `closed`).
    pub(crate) waiters: WaitList,
}

impl<T> std::fmt::Debug for Window<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("first", &self.first())
            .field("head", &self.head())
            .field("oldest", &self.oldest())
            .field("revision", &self.revision())
            .finish()
    }
}

impl<T> Window<T> {
    /// The last appended position.
    pub(crate) fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// The oldest replayable position.
    pub(crate) fn first(&self) -> u64 {
        self.first.load(Ordering::Acquire)
    }

    /// The oldest revision a reader may start after: every record newer than it is held.
    pub(crate) fn oldest(&self) -> u64 {
        self.oldest.load(Ordering::Acquire)
    }

    /// The cacher's revision as of the last batch.
    pub(crate) fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// Events replayable now.
    pub(crate) fn len(&self) -> u64 {
        (self.head() + 1).saturating_sub(self.first())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The record at `position`, reusing `cursor`'s chunk when it holds it.
    // Inlined into the replay loop, which calls it once per record: out of line it was
    // 5% of a 10-watcher run's samples, much of them on saving and restoring registers
    // and on writing the `Read` back through memory.
    #[inline]
    pub(crate) fn read<'c>(&self, position: u64, cursor: &'c mut Cursor<T>) -> Read<'c, T> {
        if cursor.chunk.as_ref().is_none_or(|chunk| chunk.get(position).is_none()) {
            if let Err(miss) = self.seek(position, cursor) {
                return miss;
            }
        }
        let Cursor { chunk: Some(chunk), issuer } = cursor else { return Read::Pending };
        match chunk.get(position) {
            Some(record) => Read::Record(Slot { record, chunk, issuer, position }),
            None => Read::Pending,
        }
    }

    /// Points `cursor` at the chunk holding `position`; on a miss, says why.
    fn seek<'c>(&self, position: u64, cursor: &mut Cursor<T>) -> Result<(), Read<'c, T>> {
        if position > self.head() {
            return Err(Read::Pending);
        }
        // Retention is logical: a seek never lands below `first`, even in a chunk that is
        // still listed.
        if position < self.first() {
            return Err(Read::Evicted);
        }
        // Loaded after `head` (rule 3): the chunk holding `position` is in this list,
        // unless it has been evicted since.
        let found = self.chunks.with(|chunks| {
            chunk_holding(chunks, position).filter(|chunk| chunk.get(position).is_some()).cloned()
        });
        if let Some(chunk) = found {
            cursor.chunk = Some(chunk);
            // The issuer of the chunk it leaves is sealed.
            cursor.issuer = None;
            return Ok(());
        }
        // Loaded after the list (rule 2): an eviction that removed the chunk shows here.
        if position < self.first() {
            return Err(Read::Evicted);
        }
        // Unreachable while the writer keeps rule 3; waiting is the safe answer if not.
        debug_assert!(false, "position {position} was appended but its chunk is not listed");
        Err(Read::Pending)
    }

    /// The last position whose record's revision is at most `revision`: a reader that
    /// starts after it gets exactly the records newer than `revision`. `Err(oldest)`
    /// when some of those have been evicted.
    pub(crate) fn position_after(&self, revision: u64) -> Result<u64, u64> {
        let head = self.head();
        // Loaded after `head` (rule 3) and after `revision` if the caller loaded it (rule
        // 4): every record up to either is in this list or evicted (which the checks
        // after the search find).
        let chunks = self.chunks.load();
        // Chunks whose first record is at or below `revision`; the boundary lies in the
        // last of them, or just before the list if there is none.
        let below =
            chunks.partition_point(|chunk| chunk.first_revision().is_some_and(|first| first <= revision));
        let position = match below.checked_sub(1).map(|index| &chunks[index]) {
            Some(chunk) => chunk.first + chunk.count_at_or_below(revision) as u64 - 1,
            None => chunks.first().map_or(head, |oldest_chunk| oldest_chunk.first - 1),
        };
        // Loaded after the list, `first` and then `oldest` (rule 2). An eviction that
        // took chunks out of this list shows in `oldest`: the position before the list
        // is then no boundary, as records newer than `revision` may have been in those
        // chunks. One that moved `first` inside a chunk still listed shows in `first`.
        let first = self.first();
        let oldest = self.oldest();
        if revision < oldest || position + 1 < first {
            return Err(oldest);
        }
        Ok(position)
    }

    /// Where a reader that wants everything after the cacher's current revision starts:
    /// that revision and the position just before its successors.
    pub(crate) fn now(&self) -> (u64, u64) {
        loop {
            let revision = self.revision();
            // Fails only if the window evicted past `revision` since it was loaded, which
            // takes a whole capacity of newer records; the next look finds those.
            if let Ok(position) = self.position_after(revision) {
                return (position, revision);
            }
        }
    }

    /// The state at exactly `revision`, from `latest` (a published state at or after it)
    /// with the window's newer records undone, newest first: each record holds the object
    /// it replaced.
    ///
    /// Fails when records newer than `revision` have been evicted, or when `revision`
    /// falls inside a relist's gap (after the revision its difference starts from, before
    /// its own), where the state was never seen.
    pub(crate) fn state_at(&self, latest: &Snapshot<T>, revision: u64) -> Result<Snapshot<T>, Unrecorded> {
        debug_assert!(revision <= latest.revision);
        if let Some(&(_, to)) = self.gaps.load().iter().find(|(from, to)| revision > *from && revision < *to)
        {
            return Err(Unrecorded { oldest: to });
        }
        let start = self.position_after(revision).map_err(|oldest| Unrecorded { oldest })?;
        // Every record at or below the published revision is appended (rule 4).
        let end = self.position_after(latest.revision).map_err(|oldest| Unrecorded { oldest })?;
        let mut objects = latest.objects.clone();
        let mut cursor = Cursor::new();
        for position in (start + 1..=end).rev() {
            match self.read(position, &mut cursor) {
                Read::Record(record) => match &record.prev {
                    Some(prev) => drop(objects.insert(record.key.clone(), prev.clone())),
                    None => drop(objects.remove(&*record.key)),
                },
                Read::Evicted => return Err(Unrecorded { oldest: self.oldest() }),
                Read::Pending => unreachable!("position {position} was found but is not appended"),
            }
        }
        Ok(Snapshot { objects, revision })
    }
}

/// A reader's position hint: the chunk it read last, so sequential reads skip the chunk
/// list, and the issuer of leases on that chunk for the owned events it makes (sealed
/// when the cursor moves on). Holding it keeps at most that one chunk alive (the owned
/// events keep theirs).
pub(crate) struct Cursor<T> {
    chunk: Option<Arc<Chunk<T>>>,
    /// The issuer of leases on `chunk`, once one was issued: a reader that owns no event
    /// (a batch receive, a list) makes none.
    issuer: Option<ChunkIssuer<T>>,
}

impl<T> Cursor<T> {
    pub(crate) fn new() -> Self {
        Self { chunk: None, issuer: None }
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
    pub(crate) position: u64,
}

impl<T> std::ops::Deref for Appended<T> {
    type Target = Record<T>;

    fn deref(&self) -> &Record<T> {
        self.chunk.get(self.position).expect("an appended record stays in its chunk")
    }
}

/// The writing side: owned by the dispatcher alone (not `Clone`).
pub(crate) struct WindowWriter<T> {
    window: Arc<Window<T>>,
    /// The writer's own copy of the published chunk list.
    chunks: Vec<Arc<Chunk<T>>>,
    policy: Capacity,
    capacity: usize,
    /// The revision of the last appended record.
    newest: u64,
    /// The position of the first record of revision `newest`: eviction stops before it.
    newest_from: u64,
    /// The position after the last one at the last published revision: eviction stops
    /// before it.
    published_from: u64,
    /// The byte budget, if the window has one.
    weighed: Option<Weighed<T>>,
    /// Evicted chunks a reader may still hold (through an old chunk list, a cursor or an
    /// owned event's lease). The writer keeps them until it holds the last reference and
    /// frees them itself, so that a reader never frees what the dispatcher and the
    /// producers allocated: a record's key and objects.
    retired: Vec<Arc<Chunk<T>>>,
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
    /// A new, empty window at `revision`: readers may start after it.
    pub(crate) fn new(policy: Capacity, revision: u64) -> Self {
        let window = Arc::new(Window {
            chunks: ArcCell::new(Arc::new(Vec::new())),
            head: AtomicU64::new(0),
            first: AtomicU64::new(1),
            oldest: AtomicU64::new(revision),
            revision: AtomicU64::new(revision),
            gaps: ArcCell::new(Arc::new(Vec::new())),
            closed: AtomicBool::new(false),
            waiters: WaitList::new(),
        });
        Self {
            window,
            chunks: Vec::new(),
            policy,
            capacity: policy.initial(),
            newest: revision,
            newest_from: 1,
            published_from: 1,
            weighed: None,
            retired: Vec::new(),
        }
    }

    /// Bounds the window in bytes too (see the module docs); set before the first append.
    pub(crate) fn limit_bytes(&mut self, budget: ByteBudget<T>) {
        debug_assert!(self.chunks.is_empty(), "a budget is set on an empty window");
        self.weighed = Some(Weighed { budget, held: 0, last_chunk: 0 });
    }

    /// What the replayable records weigh, with a byte budget (0 without one).
    pub(crate) fn bytes(&self) -> usize {
        self.weighed.as_ref().map_or(0, |weighed| weighed.held)
    }

    pub(crate) fn reader(&self) -> Arc<Window<T>> {
        self.window.clone()
    }

    /// The last appended position.
    pub(crate) fn head(&self) -> u64 {
        self.window.head.load(Ordering::Relaxed)
    }

    /// Moves an empty window to `revision` (an upstream's initial state): readers may
    /// start after it, and nothing before it is replayable.
    pub(crate) fn start_at(&mut self, revision: u64) {
        debug_assert!(self.chunks.is_empty(), "only an empty window starts over");
        self.newest = revision;
        self.window.oldest.store(revision, Ordering::Release);
        self.window.revision.store(revision, Ordering::Release);
    }

    /// Appends `record` at the next position, evicting what capacity demands; publishes
    /// in the order the module docs give. Its revision must not be below the last one.
    pub(crate) fn append(&mut self, record: Record<T>) {
        let position = self.window.head.load(Ordering::Relaxed) + 1;
        debug_assert!(record.revision >= self.newest, "revisions never decrease along positions");
        if record.revision != self.newest || self.chunks.is_empty() {
            self.newest = record.revision;
            self.newest_from = position;
        }
        let now = record.applied_at();
        let mut republish = false;
        let sealed = self
            .weighed
            .as_ref()
            .is_some_and(|weighed| weighed.last_chunk >= weighed.budget.limit / SEAL_SHARE);
        if sealed || self.chunks.last().is_none_or(|chunk| chunk.is_full()) {
            self.chunks.push(Arc::new(Chunk::new(position)));
            republish = true;
            if let Some(weighed) = &mut self.weighed {
                weighed.last_chunk = 0;
            }
        }
        if let Some(weighed) = &mut self.weighed {
            let weight = weighed.budget.weight(&record);
            weighed.held += weight;
            weighed.last_chunk += weight;
        }
        let last = self.chunks.last().expect("a chunk was just ensured");
        // SAFETY: the dispatcher owns the only `WindowWriter`, and the chunk is not full.
        unsafe { last.push(record) };
        republish |= self.evict(position, now);
        if republish {
            self.window.chunks.store(Arc::new(self.chunks.clone()));
        }
        self.window.head.store(position, Ordering::Release);
    }

    /// A relist at `to` replaced the state at `from`: the revisions between are unknown.
    /// Called before the state at `to` is published.
    pub(crate) fn relisted(&self, from: u64, to: u64) {
        if to <= from + 1 {
            return;
        }
        let oldest = self.window.oldest.load(Ordering::Relaxed);
        let mut gaps: Vec<_> =
            self.window.gaps.load().iter().copied().filter(|(_, end)| *end > oldest).collect();
        gaps.push((from, to));
        self.window.gaps.store(Arc::new(gaps));
    }

    /// Publishes the cacher's revision, after the records up to it (rule 4).
    pub(crate) fn publish_revision(&self, revision: u64) {
        self.window.revision.store(revision, Ordering::Release);
    }

    /// The state at the revision last published is now published too (at clock time
    /// `now`): what capacity held back for the batch may go.
    pub(crate) fn trim(&mut self, now: Duration) {
        let head = self.head();
        self.published_from = head + 1;
        if self.evict(head, now) {
            self.window.chunks.store(Arc::new(self.chunks.clone()));
        }
        // Held by the writer alone, a chunk cannot be taken again: readers reach chunks
        // only through the published list (no longer listing it) or a reference of
        // their own.
        self.retired.retain(|chunk| Arc::strong_count(chunk) > 1);
    }

    /// The last appended record, readable through its chunk even if a later append
    /// evicts that chunk.
    ///
    /// # Panics
    /// If nothing was appended yet.
    pub(crate) fn last(&self) -> Appended<T> {
        let chunk = self.chunks.last().expect("a record was appended").clone();
        Appended { chunk, position: self.window.head.load(Ordering::Relaxed) }
    }

    /// Moves `first` so that at most `capacity` events stay (counting `head`, appended
    /// but not yet published), growing the capacity instead while the event to evict is
    /// younger than the policy's `keep`, then on while the byte budget is exceeded, and
    /// never past the last published revision or into the newest one. Returns whether a
    /// chunk was dropped; the caller republishes the list, after this has stored `oldest`
    /// and `first`.
    fn evict(&mut self, head: u64, now: Duration) -> bool {
        let before = self.window.first.load(Ordering::Relaxed);
        let keep_from = self.newest_from.min(self.published_from);
        let mut first = before;
        while head + 1 - first > self.capacity as u64 && first < keep_from {
            if let Capacity::Growing { max, keep, .. } = self.policy {
                let young =
                    self.record(first).is_some_and(|oldest| now.saturating_sub(oldest.applied_at()) < keep);
                if young && self.capacity < max {
                    self.capacity = (self.capacity * 2).min(max);
                    continue;
                }
            }
            first = (head + 1 - self.capacity as u64).min(keep_from);
        }
        if let Some(Weighed { budget, held, .. }) = &mut self.weighed {
            let chunks = &self.chunks;
            let weight = |position| {
                let record = chunk_holding(chunks, position).and_then(|chunk| chunk.get(position));
                budget.weight(record.expect("a replayable record is held"))
            };
            *held -= (before..first).map(weight).sum::<usize>();
            while *held > budget.limit && first < keep_from {
                *held -= weight(first);
                first += 1;
            }
        }
        if first == before {
            return false;
        }
        let oldest = self.record(first - 1).expect("the last evicted record is still held").revision;
        self.window.oldest.store(oldest, Ordering::Release);
        self.window.first.store(first, Ordering::Release);
        // Chunks are in position order, so the evicted ones are a prefix; looking only at
        // that prefix keeps an append O(1) however many chunks the window holds.
        let evicted = self.chunks.iter().take_while(|chunk| chunk.end() <= first).count();
        self.retired.extend(self.chunks.drain(..evicted));
        evicted > 0
    }

    fn record(&self, position: u64) -> Option<&Record<T>> {
        chunk_holding(&self.chunks, position)?.get(position)
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
    use crate::event::Origin;

    /// A one-record revision.
    fn record(revision: u64, applied_at: Duration) -> Record<u64> {
        part_of(revision, revision - 1, true, applied_at)
    }

    /// A record of `revision`, whose revision started after `since`.
    fn part_of(revision: u64, since: u64, ends_revision: bool, applied_at: Duration) -> Record<u64> {
        Record::new(
            (revision, since),
            std::sync::Arc::from(format!("k{revision}")),
            (Some(std::sync::Arc::new(revision)), None),
            (Origin::Change, ends_revision),
            applied_at,
        )
    }

    /// A window bounded only in bytes, each record weighing `weight`.
    fn weighed(limit: usize, weight: usize, capacity: Capacity) -> WindowWriter<u64> {
        let mut writer = WindowWriter::new(capacity, 0);
        writer.limit_bytes(ByteBudget { limit, weigh: std::sync::Arc::new(move |_: &u64| weight) });
        writer
    }

    fn append_published(writer: &mut WindowWriter<u64>, revisions: std::ops::RangeInclusive<u64>) {
        for revision in revisions {
            writer.append(record(revision, Duration::ZERO));
            writer.publish_revision(revision);
            writer.trim(Duration::ZERO);
        }
    }

    #[test]
    fn a_byte_budget_bounds_what_the_window_weighs_and_frees_it() {
        // 10 bytes a record under a limit of 800: chunks are sealed at 100 bytes, 10 records.
        let mut writer = weighed(800, 10, Capacity::Fixed(1 << 20));
        let window = writer.reader();
        let first = record(1, Duration::ZERO);
        let pinned = first.object.clone().expect("a put");
        writer.append(first);
        writer.publish_revision(1);
        append_published(&mut writer, 2..=1000);
        assert_eq!((writer.bytes(), window.len(), window.oldest()), (800, 80, 920));
        assert_eq!(writer.chunks.len(), 8, "eight sealed chunks of ten hold the 80 records");
        assert_eq!(std::sync::Arc::strong_count(&pinned), 1, "an evicted chunk is freed");
        let mut cursor = Cursor::new();
        for position in window.first()..=window.head() {
            assert!(matches!(window.read(position, &mut cursor), Read::Record(r) if r.revision == position));
        }
        assert!(matches!(window.read(window.first() - 1, &mut Cursor::new()), Read::Evicted));
        assert_eq!(window.position_after(900), Err(920));
        assert_eq!(window.position_after(950), Ok(950));
    }

    #[test]
    fn a_revision_heavier_than_the_budget_stays_whole_until_a_newer_one() {
        let mut writer = weighed(100, 10, Capacity::Fixed(1 << 20));
        let window = writer.reader();
        // Revision 1: a transaction of 30 records, three times the budget.
        for part in 0..30 {
            writer.append(part_of(1, 0, part == 29, Duration::ZERO));
        }
        writer.publish_revision(1);
        writer.trim(Duration::ZERO);
        assert_eq!((window.len(), writer.bytes()), (30, 300));
        assert_eq!(window.position_after(0), Ok(0), "a reader from before it replays all of it");
        append_published(&mut writer, 2..=2);
        assert_eq!((window.len(), writer.bytes()), (10, 100));
        assert_eq!(window.position_after(0), Err(1));
        assert_eq!(window.position_after(1), Ok(30));
    }

    #[test]
    fn the_byte_budget_wins_over_a_growing_capacity() {
        // Every record is younger than `keep`, so the capacity alone would grow to `max`.
        let growing = Capacity::Growing { min: 4, max: 1024, keep: Duration::from_secs(75) };
        let mut writer = weighed(100, 10, growing);
        let window = writer.reader();
        append_published(&mut writer, 1..=500);
        assert_eq!((window.len(), writer.bytes()), (10, 100));
        assert!(writer.capacity() < 1024, "grew to {}", writer.capacity());
    }

    #[test]
    fn reads_evicts_and_frees_whole_chunks() {
        let events = CHUNK_LEN as u64 * 3;
        let mut writer = WindowWriter::new(Capacity::Fixed(CHUNK_LEN), 0);
        let window = writer.reader();
        let mut cursor = Cursor::new();
        let first = record(1, Duration::ZERO);
        let pinned = first.object.clone().expect("a put");
        writer.append(first);
        assert!(matches!(window.read(1, &mut cursor), Read::Record(r) if r.revision == 1));
        assert!(matches!(window.read(2, &mut cursor), Read::Pending));
        for revision in 2..=events {
            writer.append(record(revision, Duration::ZERO));
            writer.publish_revision(revision);
            writer.trim(Duration::ZERO);
        }
        assert_eq!((window.first(), window.head()), (events - CHUNK_LEN as u64 + 1, events));
        assert_eq!(
            window.oldest(),
            window.first() - 1,
            "dense revisions: oldest is the position before first"
        );
        let mut fresh = Cursor::new();
        assert!(matches!(window.read(1, &mut fresh), Read::Evicted));
        assert!(matches!(window.read(window.first(), &mut fresh), Read::Record(_)));
        // The old cursor still holds the first chunk: reading it is never wrong.
        assert!(matches!(window.read(1, &mut cursor), Read::Record(_)));
        assert_eq!(std::sync::Arc::strong_count(&pinned), 2);
        drop(cursor);
        assert_eq!(std::sync::Arc::strong_count(&pinned), 2, "the writer frees it, not the reader");
        writer.trim(Duration::ZERO);
        assert_eq!(
            std::sync::Arc::strong_count(&pinned),
            1,
            "evicted chunk freed once its last reader let go"
        );
    }

    /// Owned entries of the records at `positions`, read through `cursor`.
    fn read_entries(
        window: &Window<u64>,
        cursor: &mut Cursor<u64>,
        positions: std::ops::RangeInclusive<u64>,
    ) -> Vec<Entry<u64>> {
        positions
            .map(|position| match window.read(position, cursor) {
                Read::Record(mut slot) => slot.entry(Side::New),
                _ => panic!("position {position} is held"),
            })
            .collect()
    }

    #[test]
    fn an_owned_entry_keeps_its_record_after_eviction_and_its_cursor() {
        let mut writer = WindowWriter::new(Capacity::Fixed(CHUNK_LEN), 0);
        let window = writer.reader();
        append_published(&mut writer, 1..=3);
        let mut cursor = Cursor::new();
        let entries = read_entries(&window, &mut cursor, 1..=3);
        let object = entries[0].object().clone();
        append_published(&mut writer, 4..=CHUNK_LEN as u64 * 3);
        assert!(matches!(window.read(1, &mut Cursor::new()), Read::Evicted));
        drop(cursor);
        let seen: Vec<_> = entries.iter().map(|entry| (entry.revision(), **entry.object())).collect();
        assert_eq!(seen, [(1, 1), (2, 2), (3, 3)], "read through the lease after eviction");
        assert_eq!(&**entries[2].key(), "k3");
        assert_eq!(std::sync::Arc::strong_count(&object), 2, "the evicted chunk is alive for the entries");
        drop(entries);
        assert_eq!(std::sync::Arc::strong_count(&object), 2, "a reader does not free the chunk");
        writer.trim(Duration::ZERO);
        assert_eq!(std::sync::Arc::strong_count(&object), 1, "the writer does, once it holds it alone");
    }

    #[test]
    fn entries_dropped_while_their_cursor_reads_the_chunk_free_it_once_the_cursor_moves_on() {
        let mut writer = WindowWriter::new(Capacity::Fixed(CHUNK_LEN), 0);
        let window = writer.reader();
        append_published(&mut writer, 1..=3);
        let mut cursor = Cursor::new();
        let entries = read_entries(&window, &mut cursor, 1..=3);
        let object = entries[0].object().clone();
        // Dropped on this thread while the cursor still reads the chunk: deferred.
        drop(entries);
        append_published(&mut writer, 4..=CHUNK_LEN as u64 * 3);
        assert_eq!(std::sync::Arc::strong_count(&object), 2, "the cursor holds the evicted chunk");
        assert!(matches!(window.read(window.first(), &mut cursor), Read::Record(_)));
        writer.trim(Duration::ZERO);
        assert_eq!(
            std::sync::Arc::strong_count(&object),
            1,
            "moving on, the cursor applied the deferred drops, and the writer freed the chunk"
        );
    }

    #[test]
    fn growing_capacity_keeps_young_history() {
        let policy = Capacity::Growing { min: 2, max: 8, keep: Duration::from_secs(75) };
        let mut writer = WindowWriter::new(policy, 0);
        for revision in 1..=5 {
            writer.append(record(revision, Duration::from_secs(revision)));
            writer.publish_revision(revision);
            writer.trim(Duration::from_secs(revision));
        }
        assert_eq!(
            (writer.capacity(), writer.reader().len()),
            (8, 5),
            "grew instead of evicting young events"
        );
        for revision in 6..=20 {
            writer.append(record(revision, Duration::from_secs(revision)));
            writer.publish_revision(revision);
            writer.trim(Duration::from_secs(revision));
        }
        assert_eq!((writer.capacity(), writer.reader().len()), (8, 8), "capped at max");
        writer.append(record(21, Duration::from_secs(1000)));
        assert_eq!(writer.reader().len(), 8, "old events are evicted once past the cap");
    }

    #[test]
    fn sparse_revisions_map_to_positions_across_chunks() {
        // Revisions 10, 20, 30, … with every third one a transaction of three records,
        // over several chunks.
        let mut writer = WindowWriter::new(Capacity::Fixed(10_000), 5);
        let window = writer.reader();
        let mut expected = Vec::new();
        let mut since = 5;
        for step in 1..=CHUNK_LEN as u64 {
            let revision = step * 10;
            let parts = if step % 3 == 0 { 3 } else { 1 };
            for part in 0..parts {
                writer.append(part_of(revision, since, part + 1 == parts, Duration::ZERO));
                expected.push(revision);
            }
            since = revision;
        }
        writer.publish_revision(since + 5);
        writer.trim(Duration::ZERO);
        for probe in [5, 9, 10, 11, 29, 30, 31, 1234, since, since + 5] {
            let position = window.position_after(probe).unwrap();
            let at_or_below = expected.iter().filter(|revision| **revision <= probe).count() as u64;
            assert_eq!(position, at_or_below, "position after revision {probe}");
        }
        assert_eq!(window.now(), (expected.len() as u64, since + 5));
    }

    #[test]
    fn the_newest_revision_is_never_evicted_and_oldest_follows_evictions() {
        let mut writer = WindowWriter::new(Capacity::Fixed(2), 0);
        let window = writer.reader();
        writer.append(record(1, Duration::ZERO));
        writer.publish_revision(1);
        writer.trim(Duration::ZERO);
        // A transaction of four records at revision 7, with a capacity of two.
        for part in 0..4 {
            writer.append(part_of(7, 1, part == 3, Duration::ZERO));
        }
        writer.publish_revision(7);
        writer.trim(Duration::ZERO);
        assert_eq!((window.first(), window.oldest()), (2, 1), "all of revision 7 is held");
        assert_eq!(window.position_after(1), Ok(1));
        assert_eq!(window.position_after(0), Err(1), "revision 1's record is gone");
        writer.append(record(8, Duration::ZERO));
        assert_eq!((window.first(), window.oldest()), (5, 7), "a newer revision lets revision 7 go");
        assert_eq!(window.position_after(7), Ok(5));
        assert_eq!(window.position_after(6), Err(7));
    }

    #[test]
    fn nothing_after_the_published_revision_is_evicted() {
        let mut writer = WindowWriter::new(Capacity::Fixed(2), 0);
        let window = writer.reader();
        writer.append(record(1, Duration::ZERO));
        writer.publish_revision(1);
        writer.trim(Duration::ZERO);
        // A batch of five: a reader of the state at 1 must still find 2..=6 afterwards.
        for revision in 2..=6 {
            writer.append(record(revision, Duration::ZERO));
        }
        assert_eq!((window.first(), window.position_after(1)), (2, Ok(1)));
        writer.publish_revision(6);
        writer.trim(Duration::ZERO);
        assert_eq!(window.first(), 5, "once a newer state is published, capacity rules again");
    }

    #[test]
    fn history_rolls_back_through_sparse_revisions_and_refuses_a_relist_gap() {
        let mut writer = WindowWriter::new(Capacity::Fixed(100), 0);
        let window = writer.reader();
        let put = |revision: u64, since: u64, origin: Origin, key: &str, prev: Option<u64>| {
            Record::new(
                (revision, since),
                std::sync::Arc::from(key),
                (Some(std::sync::Arc::new(revision)), prev.map(std::sync::Arc::new)),
                (origin, true),
                Duration::ZERO,
            )
        };
        writer.append(put(4, 0, Origin::Change, "a", None));
        writer.append(put(9, 4, Origin::Change, "a", Some(4)));
        writer.relisted(9, 20);
        writer.append(put(20, 9, Origin::Relist, "a", Some(9)));
        // A relist that found nothing to change still leaves a gap.
        writer.relisted(20, 30);
        let latest = Snapshot {
            objects: [(std::sync::Arc::from("a"), std::sync::Arc::new(20))].into_iter().collect(),
            revision: 30,
        };
        let value_at = |revision| {
            window.state_at(&latest, revision).map(|state| state.objects.get("a").map(|object| **object))
        };
        assert_eq!(value_at(30), Ok(Some(20)));
        assert_eq!(value_at(25), Err(Unrecorded { oldest: 30 }), "inside the empty relist's gap");
        assert_eq!(value_at(20), Ok(Some(20)));
        assert_eq!(value_at(9), Ok(Some(9)), "the relist's difference undone");
        assert_eq!(value_at(5), Ok(Some(4)), "a revision between two records is the older state");
        assert_eq!(value_at(3), Ok(None));
        assert_eq!(value_at(10), Err(Unrecorded { oldest: 20 }), "inside the relist's gap");
    }
}
