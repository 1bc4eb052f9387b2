//! Upstream mode: the upstream's revisions (sparse, several changes at one), progress,
//! and relists that close no watch; bad input refused with nothing applied.
mod common;
use common::*;
use std::collections::BTreeMap;
use std::time::Duration;
use watchcache::{
    At, Cacher, Change, Event, ListError, ListOptions, ManualClock, SlowWatcherPolicy, Start, UpstreamError,
    Watch, WatchError, WatchOptions,
};

/// An upstream cacher loaded with `state` at `revision`, once it is ready.
fn loaded(
    builder: watchcache::CacherBuilder<Pod>,
    revision: u64,
    state: Vec<(String, Pod)>,
) -> (Cacher<Pod>, watchcache::Upstream<Pod>) {
    let (cacher, mut upstream) = builder.upstream();
    upstream.relist(revision, state).unwrap();
    settle(&cacher, revision);
    (cacher, upstream)
}

/// Applies `event` to `state`, as a client keeping a copy does.
fn follow(state: &mut BTreeMap<String, u32>, event: &Event<Pod>) {
    match event {
        Event::Added(entry) | Event::Modified(entry) => {
            state.insert(entry.key().to_string(), entry.object().value);
        }
        Event::Deleted(entry) => {
            state.remove(&**entry.key());
        }
        Event::Bookmark { .. } => {}
    }
}

fn listed(cacher: &Cacher<Pod>, options: ListOptions<Pod>) -> BTreeMap<String, u32> {
    let list = cacher.list(options).unwrap();
    list.items.iter().map(|(key, object)| (key.to_string(), object.value)).collect()
}

#[test]
fn sparse_revisions_and_transactions_are_delivered_as_the_upstream_numbered_them() {
    let (cacher, mut upstream) = loaded(indexed(), 100, vec![("pods/a".into(), pod("n1", 1))]);
    let mut all = cacher.watch(WatchOptions::new().start(Start::Revision(100))).unwrap();
    let mut on_n1 = cacher.watch(WatchOptions::new().trigger("n1").start(Start::Revision(100))).unwrap();
    upstream.apply(120, [Change::put("pods/b", pod("n1", 2))]).unwrap();
    upstream.apply(150, [Change::put("pods/a", pod("n2", 3)), Change::delete("pods/b")]).unwrap();
    upstream.apply(151, [Change::delete("pods/missing")]).unwrap();
    let expected = [
        ("added", "pods/b".to_string(), 120),
        ("modified", "pods/a".to_string(), 150),
        ("deleted", "pods/b".to_string(), 150),
    ];
    assert_eq!(summaries(&take(&mut all, 3)), expected);
    // Pod a moved off n1: its watchers see it go, in the same revision as b.
    assert_eq!(
        summaries(&take(&mut on_n1, 3)),
        [expected[0].clone(), ("deleted", "pods/a".into(), 150), expected[2].clone()]
    );
    settle(&cacher, 151);
    assert_eq!((cacher.revision(), cacher.stats().deletes_of_missing_keys), (151, 1));

    // Resuming after any revision, recorded or skipped, continues exactly.
    for (after, first) in [(100, 120), (119, 120), (120, 150), (149, 150)] {
        let mut resumed = cacher.watch(WatchOptions::new().start(Start::Revision(after))).unwrap();
        assert_eq!(next(&mut resumed).unwrap().revision(), first, "after {after}");
    }
    let at = |revision| listed(&cacher, ListOptions::new().at(At::Exact(revision)));
    assert_eq!(at(100), BTreeMap::from([("pods/a".into(), 1)]));
    assert_eq!(
        at(135),
        BTreeMap::from([("pods/a".into(), 1), ("pods/b".into(), 2)]),
        "between two revisions"
    );
    assert_eq!(at(150), BTreeMap::from([("pods/a".into(), 3)]));
    assert_eq!(
        cacher.watch(WatchOptions::new().start(Start::Revision(99))).unwrap_err(),
        WatchError::Expired { requested: 99, oldest: 100 },
        "nothing before the initial load is known"
    );
}

#[test]
fn progress_moves_the_revision_for_bookmarks_waits_and_resumes() {
    let clock = ManualClock::new();
    let builder = indexed().bookmark_period(Duration::from_secs(1)).clock(clock.clone());
    let (cacher, mut upstream) = loaded(builder, 10, Vec::new());
    let mut watch = cacher.watch(WatchOptions::new().trigger("n1").bookmarks(true)).unwrap();
    let waiting = {
        let cacher = cacher.clone();
        std::thread::spawn(move || {
            cacher.list(ListOptions::new().at(At::AtLeast(40))).map(|list| list.revision)
        })
    };
    upstream.progress(40).unwrap();
    assert_eq!(waiting.join().unwrap(), Ok(40), "a waiting list sees progress");
    assert_eq!(cacher.revision(), 40);
    clock.advance(Duration::from_secs(2));
    assert!(
        matches!(next(&mut watch), Ok(Event::Bookmark { revision: 40, .. })),
        "a bookmark carries progress"
    );
    upstream.apply(41, [Change::put("pods/a", pod("n1", 1))]).unwrap();
    let mut resumed = cacher.watch(WatchOptions::new().start(Start::Revision(40))).unwrap();
    assert_eq!(summary(&next(&mut resumed).unwrap()), ("added", "pods/a".into(), 41));
}

/// The Kubernetes Cacher ends every watch when its etcd watch breaks. Here a relist of a
/// thousand objects reaches a hundred open watches of every kind — indexed and not,
/// reading, stalled (parked or past their buffer), under `Terminate` with an empty budget
/// — and closes none: each ends equal to the new state.
#[test]
fn a_relist_closes_no_watch_and_leaves_each_equal_to_the_new_state() {
    const OBJECTS: u32 = if cfg!(miri) { 20 } else { 1000 };
    let key = |n: u32| format!("pods/{n:04}");
    let node = |n: u32| format!("n{}", n % 4);
    let before: Vec<_> = (0..OBJECTS).map(|n| (key(n), pod(&node(n), n))).collect();
    let builder = indexed().slow_watcher_policy(SlowWatcherPolicy::Terminate).watcher_buffer(8);
    let (cacher, mut upstream) = loaded(builder, 1_000, before.clone());

    // Each watch, the trigger value it asked for, and the state it has followed.
    type Followed = (Watch<Pod>, Option<String>, BTreeMap<String, u32>);
    let mut watches: Vec<Followed> = (0..100)
        .map(|n| {
            let trigger = (n % 2 == 0).then(|| node(n));
            let mut options = WatchOptions::new().start(Start::Snapshot);
            if let Some(value) = &trigger {
                options = options.trigger(value.clone());
            }
            (cacher.watch(options).unwrap(), trigger, BTreeMap::new())
        })
        .collect();
    // Half read their initial state now; the others stall until after the relist.
    for (watch, _, state) in watches.iter_mut().step_by(2) {
        loop {
            let event = next(watch).unwrap();
            follow(state, &event);
            if let Event::Bookmark { initial_events_end: true, .. } = event {
                break;
            }
        }
    }

    // While the upstream's watch was broken: a third changed, a third went, new keys came.
    let after: Vec<_> = (0..OBJECTS)
        .filter(|n| n % 3 != 1)
        .map(
            |n| if n % 3 == 0 { (key(n), pod(&node(n + 1), n + 10_000)) } else { (key(n), pod(&node(n), n)) },
        )
        .chain((OBJECTS..OBJECTS + OBJECTS / 10).map(|n| (key(n), pod(&node(n), n))))
        .collect();
    upstream.relist(2_000, after).unwrap();
    upstream.apply(2_001, [Change::put(key(0), pod("n0", 7))]).unwrap();
    settle(&cacher, 2_001);

    for (watch, trigger, state) in &mut watches {
        let mut options = ListOptions::new();
        if let Some(value) = trigger {
            options = options.trigger(value.clone());
        }
        let expected = listed(&cacher, options);
        while state != &expected {
            let event = next(watch).unwrap_or_else(|end| panic!("a watch ended across the relist: {end}"));
            follow(state, &event);
        }
        assert!(!matches!(watch.try_recv(), Err(watchcache::TryRecvError::Ended(_))), "still open");
    }
    assert_eq!(cacher.stats().terminations, 0);
}

#[test]
fn a_watch_from_before_a_relist_gets_its_difference_not_expired() {
    let (cacher, mut upstream) = loaded(indexed(), 5, vec![("pods/a".into(), pod("n1", 1))]);
    upstream.apply(6, [Change::put("pods/b", pod("n1", 2))]).unwrap();
    upstream
        .relist(30, vec![("pods/b".to_string(), pod("n1", 2)), ("pods/c".to_string(), pod("n2", 3))])
        .unwrap();
    settle(&cacher, 30);
    let mut resumed = cacher.watch(WatchOptions::new().start(Start::Revision(5))).unwrap();
    assert_eq!(
        summaries(&take(&mut resumed, 3)),
        [("added", "pods/b".into(), 6), ("deleted", "pods/a".into(), 30), ("added", "pods/c".into(), 30)],
        "exact history up to the relist, then its net difference in key order"
    );
    // Inside the relist's gap the state was never seen: an exact list refuses it.
    assert_eq!(
        cacher.list(ListOptions::new().at(At::Exact(20))).unwrap_err(),
        ListError::Expired { requested: 20, oldest: 30 }
    );
    assert_eq!(listed(&cacher, ListOptions::new().at(At::Exact(6))).len(), 2);
}

#[test]
fn bad_upstream_input_is_a_typed_error_and_applies_nothing() {
    let (cacher, mut upstream) = Cacher::<Pod>::builder().upstream();
    let error = upstream.apply(1, [Change::put("a", pod("n", 1))]).unwrap_err();
    assert_eq!(error.to_string(), "the upstream's state is not loaded yet; relist first");
    assert!(matches!(error, UpstreamError::NotLoaded(ref changes) if changes.len() == 1));
    assert_eq!(upstream.revision(), None);

    let twice = upstream.relist(10, [("a", pod("n", 1)), ("a", pod("n", 2))]).unwrap_err();
    assert_eq!(twice.to_string(), r#"the relist names key "a" more than once; nothing was applied"#);
    assert_eq!(twice.into_inner().len(), 2, "the state comes back");
    upstream.relist(10, [("a", pod("n", 1))]).unwrap();
    settle(&cacher, 10);

    let stale = upstream.apply(10, [Change::put("a", pod("n", 2)), Change::delete("a")]).unwrap_err();
    assert_eq!(stale.to_string(), "revision 10 does not follow the last revision 10; nothing was applied");
    assert_eq!(
        stale.into_inner(),
        [Change::put("a", pod("n", 2)), Change::delete("a")],
        "the changes come back"
    );
    assert!(matches!(upstream.progress(9), Err(UpstreamError::OutOfOrder { revision: 9, last: 10, .. })));
    assert!(matches!(upstream.relist(9, [("b", pod("n", 1))]), Err(UpstreamError::OutOfOrder { .. })));
    upstream.progress(10).unwrap();
    assert_eq!(upstream.revision(), Some(10));
    settle(&cacher, 10);
    assert_eq!(listed(&cacher, ListOptions::new()), BTreeMap::from([("a".into(), 1)]), "nothing was applied");

    cacher.shutdown();
    let closed = upstream.apply(11, [Change::put("b", pod("n", 3))]).unwrap_err();
    assert!(matches!(closed, UpstreamError::Closed(ref changes) if changes.len() == 1));
    assert_eq!(closed.to_string(), "cacher is shut down; the change was not applied");
    assert!(matches!(upstream.try_progress(12), Err(UpstreamError::Closed(()))));
}

#[test]
#[should_panic(expected = "takes changes only through its Upstream handle")]
fn an_upstream_cacher_has_no_producers() {
    let (cacher, _upstream) = Cacher::<u32>::builder().upstream();
    let _ = cacher.producer();
}

#[test]
fn async_upstream_calls_wait_without_blocking_the_thread() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        let (cacher, mut upstream) = Cacher::<u32>::builder().incoming_capacity(1).upstream();
        upstream.relist_async(1, [("a", 1)]).await.unwrap();
        for revision in 2..50 {
            upstream.apply_async(revision, [Change::put("a", revision as u32)]).await.unwrap();
        }
        upstream.progress_async(60).await.unwrap();
        let list = cacher.list_async(ListOptions::new().at(At::AtLeast(60))).await.unwrap();
        assert_eq!((list.revision, *list.items[0].1), (60, 49));
    });
}
