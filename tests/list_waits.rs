//! Waiting lists in every form: blocking, with a chosen wait, without waiting, and in a
//! task that holds no thread; each ends with the revision or a typed `TooNew`, on the
//! cacher's clock.
mod common;
use common::*;
use std::time::Duration;
use watchcache::{At, Cacher, ListError, ListOptions, ManualClock, Readiness};

#[test]
fn try_list_never_waits() {
    let cacher: Cacher<u32> = Cacher::builder().build();
    assert_eq!(
        cacher.try_list(ListOptions::new().at(At::AtLeast(1))).unwrap_err(),
        ListError::TooNew { requested: 1, current: 0 }
    );
    cacher.producer().put("a", 1).unwrap();
    settle(&cacher, 1);
    assert_eq!(cacher.try_list(ListOptions::new().at(At::AtLeast(1))).unwrap().revision, 1);
}

#[test]
fn list_timeout_gives_up_when_its_wait_passes_on_the_cachers_clock() {
    let clock = ManualClock::new();
    let cacher: Cacher<u32> = Cacher::builder().clock(clock.clone()).build();
    let waiting = {
        let cacher = cacher.clone();
        std::thread::spawn(move || {
            cacher.list_timeout(ListOptions::new().at(At::AtLeast(5)), Duration::from_secs(2))
        })
    };
    // Advance until the wait is over: each step wakes the dispatcher, which ends the wait
    // once two seconds have passed since the list asked.
    while !waiting.is_finished() {
        clock.advance(Duration::from_millis(500));
        std::thread::yield_now();
    }
    assert_eq!(waiting.join().unwrap().unwrap_err(), ListError::TooNew { requested: 5, current: 0 });
    assert_eq!(
        ListError::TooNew { requested: 5, current: 0 }.to_string(),
        "revision 5 is newer than the cacher's revision 0; retry later"
    );
}

#[test]
fn list_async_holds_no_thread_while_it_waits() {
    // One thread runs the lists and the writer: a list that blocked it would never end.
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let cacher: Cacher<u32> = Cacher::builder().future_wait(Duration::from_secs(600)).build();
    runtime.block_on(async {
        let lists: Vec<_> =
            (1..=3u64).map(|at| cacher.list_async(ListOptions::new().at(At::AtLeast(at)))).collect();
        let producer = cacher.producer();
        let writes = async {
            for value in 1..=3 {
                producer.put_async(format!("k{value}"), value).await.unwrap();
            }
        };
        let (listed, ()) = futures::join!(futures::future::join_all(lists), writes);
        for (at, list) in (1..).zip(listed) {
            assert!(list.unwrap().revision >= at);
        }
    });
}

#[test]
fn a_waiting_list_on_a_loading_cacher_waits_for_the_load() {
    let (cacher, loader) = Cacher::<u32>::builder().build_pending();
    let waiting = {
        let cacher = cacher.clone();
        std::thread::spawn(move || {
            cacher.list(ListOptions::new().at(At::AtLeast(1))).map(|list| list.items.len())
        })
    };
    loader.put("a", 1).unwrap();
    loader.put("b", 2).unwrap();
    loader.finish().unwrap();
    assert_eq!(waiting.join().unwrap(), Ok(2), "answered once loaded, with the whole initial state");
    assert_eq!(cacher.readiness(), Readiness::Ready);
}

#[test]
fn a_list_waiting_at_shutdown_ends() {
    let cacher: Cacher<u32> = Cacher::builder().future_wait(Duration::from_secs(600)).build();
    let waiting = {
        let cacher = cacher.clone();
        std::thread::spawn(move || cacher.list(ListOptions::new().at(At::AtLeast(9))))
    };
    // Whether the list asked before or after the shutdown, it ends `TooNew`.
    cacher.shutdown();
    assert_eq!(waiting.join().unwrap().unwrap_err(), ListError::TooNew { requested: 9, current: 0 });
}
