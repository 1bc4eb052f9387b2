//! `memory`: heap bytes per idle watcher and per window event, counted by a global
//! allocator that tracks live bytes, next to the same figures for the peers. Prints a
//! table; `cargo bench --bench memory` runs it.
//!
//! Each figure is the growth of live heap bytes over N items divided by N, after the
//! dispatcher has taken in every item (so its own bookkeeping is included).

// A bench binary with its own `main`: nothing public to document.
#![allow(missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use watchcache::{Cacher, WatchOptions};

/// The system allocator, counting the bytes it has live.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds as it does for `System`; the counter has no effect on it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; `ptr` came from `alloc` with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const WATCHERS: usize = 10_000;
const EVENTS: u64 = 100_000;

/// Live bytes added by `make`, per item, once `settled` says the dispatcher is done; the
/// items are kept until after the count.
fn per_item<I>(items: usize, make: impl FnOnce() -> I, settled: impl Fn() -> bool) -> f64 {
    let before = LIVE.load(Ordering::Relaxed);
    let kept = make();
    while !settled() {
        std::thread::yield_now();
    }
    let grown = LIVE.load(Ordering::Relaxed) - before;
    drop(kept);
    grown as f64 / items as f64
}

fn indexed() -> Cacher<u64> {
    Cacher::builder().trigger(|_: &u64| Some("node")).build()
}

fn all_registered(cacher: &Cacher<u64>) -> bool {
    let stats = cacher.stats();
    stats.watchers_indexed + stats.watchers_unindexed == WATCHERS
}

fn main() {
    let rows: Vec<(&str, f64)> = vec![
        ("watchcache: idle unindexed watcher", {
            let cacher = indexed();
            per_item(
                WATCHERS,
                || (0..WATCHERS).map(|_| cacher.watch(WatchOptions::new()).unwrap()).collect::<Vec<_>>(),
                || all_registered(&cacher),
            )
        }),
        ("watchcache: idle indexed watcher (default buffer, 10 events)", {
            let cacher = indexed();
            per_item(
                WATCHERS,
                || {
                    (0..WATCHERS)
                        .map(|_| cacher.watch(WatchOptions::new().trigger("node")).unwrap())
                        .collect::<Vec<_>>()
                },
                || all_registered(&cacher),
            )
        }),
        ("watchcache: window event, one key (u64 object, 3-byte key)", {
            let cacher = Cacher::<u64>::builder().window_capacity(EVENTS as usize).build();
            let producer = cacher.producer();
            per_item(
                EVENTS as usize,
                || (0..EVENTS).for_each(|event| producer.put("key", event).unwrap()),
                || cacher.stats().revision == EVENTS,
            )
        }),
        ("watchcache: window event + stored object, distinct keys (u64, 10-byte key)", {
            let cacher = Cacher::<u64>::builder().window_capacity(EVENTS as usize).build();
            let producer = cacher.producer();
            per_item(
                EVENTS as usize,
                || (0..EVENTS).for_each(|event| producer.put(format!("pod-{event:06}"), event).unwrap()),
                || cacher.stats().revision == EVENTS,
            )
        }),
        ("tokio broadcast: idle receiver", {
            let (sender, _) = tokio::sync::broadcast::channel::<u64>(1024);
            per_item(WATCHERS, || (0..WATCHERS).map(|_| sender.subscribe()).collect::<Vec<_>>(), || true)
        }),
        ("tokio broadcast: buffered message (u64)", {
            per_item(
                EVENTS as usize,
                || {
                    let (sender, receiver) = tokio::sync::broadcast::channel::<u64>(EVENTS as usize);
                    (0..EVENTS).for_each(|event| _ = sender.send(event).unwrap());
                    (sender, receiver)
                },
                || true,
            )
        }),
        ("crossbeam-channel: idle watcher in a Vec of bounded(1024)", {
            per_item(
                WATCHERS,
                || (0..WATCHERS).map(|_| crossbeam_channel::bounded::<u64>(1024)).collect::<Vec<_>>(),
                || true,
            )
        }),
    ];
    println!("{:<78} {:>12}", "item", "bytes/item");
    for (item, bytes) in rows {
        println!("{item:<78} {bytes:>12.0}");
    }
}
