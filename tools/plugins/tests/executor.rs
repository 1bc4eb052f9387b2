//! The operation executor: the kubelet's `nestedpendingoperations` tests (concurrent for
//! different keys, serial for one key, already pending, backoff, a second operation after
//! the first panics). Time is tokio's paused clock, advanced by the test.

use std::time::Duration;
use tokio::sync::oneshot;
use watchcache_plugins::executor::{
    OperationError, OperationExecutor, StartError, INITIAL_BACKOFF, MAX_BACKOFF,
};

/// An operation that runs until its gate opens, then ends with `outcome`.
fn gated(
    outcome: Result<(), String>,
) -> (oneshot::Sender<()>, impl std::future::Future<Output = Result<(), String>>) {
    let (open, gate) = oneshot::channel::<()>();
    (open, async move {
        let _ = gate.await;
        outcome
    })
}

#[tokio::test(start_paused = true)]
async fn different_keys_run_at_once_and_one_key_runs_alone() {
    let executor = OperationExecutor::new();
    let (open_a, a) = gated(Ok(()));
    let (open_b, b) = gated(Ok(()));
    let a = executor.start("a", a).unwrap();
    let b = executor.start("b", b).expect("another key is not held up by a running one");
    assert!(executor.is_pending("a") && executor.is_pending("b"));
    assert_eq!(executor.start("a", async { Ok(()) }).unwrap_err(), StartError::AlreadyPending);
    open_a.send(()).unwrap();
    open_b.send(()).unwrap();
    assert_eq!(a.await.unwrap(), Ok(()));
    assert_eq!(b.await.unwrap(), Ok(()));
    assert!(!executor.is_pending("a"));
    executor.start("a", async { Ok(()) }).expect("free again once the first ended").await.unwrap().unwrap();
    let stats = executor.stats();
    assert_eq!((stats.started, stats.refused_pending, stats.failures), (3, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_doubling_to_the_cap_and_a_success_clears_it() {
    let executor = OperationExecutor::new();
    let mut expected = INITIAL_BACKOFF;
    for _ in 0..12 {
        let outcome = executor.start("k", async { Err("refused".to_owned()) }).unwrap().await.unwrap();
        assert_eq!(outcome, Err(OperationError::Failed("refused".into())));
        match executor.start("k", async { Ok(()) }) {
            Err(StartError::BackingOff { retry_in }) => assert_eq!(retry_in, expected),
            other => panic!("expected a backoff of {expected:?}, got {other:?}"),
        }
        // Another key is never delayed by this one's backoff.
        executor.start("other", async { Ok(()) }).unwrap().await.unwrap().unwrap();
        tokio::time::advance(expected - Duration::from_millis(1)).await;
        assert!(matches!(executor.start("k", async { Ok(()) }), Err(StartError::BackingOff { .. })));
        tokio::time::advance(Duration::from_millis(1)).await;
        expected = (expected * 2).min(MAX_BACKOFF);
    }
    assert_eq!(expected, MAX_BACKOFF, "the backoff reached its cap of 2 min 2 s");
    executor.start("k", async { Ok(()) }).unwrap().await.unwrap().unwrap();
    // Cleared: the next failure backs off from the start again.
    executor.start("k", async { Err("again".to_owned()) }).unwrap().await.unwrap().unwrap_err();
    assert_eq!(
        executor.start("k", async { Ok(()) }).unwrap_err(),
        StartError::BackingOff { retry_in: INITIAL_BACKOFF }
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_operation_is_an_error_and_the_key_runs_again_after_its_backoff() {
    let executor = OperationExecutor::new();
    let outcome = executor.start("k", async { panic!("a handler bug") }).unwrap().await.unwrap();
    assert_eq!(outcome, Err(OperationError::Panicked));
    assert!(!executor.is_pending("k"), "a panic does not leave the key held");
    tokio::time::advance(INITIAL_BACKOFF).await;
    let second = executor.start("k", async { Ok(()) }).expect("the second operation starts");
    assert_eq!(second.await.unwrap(), Ok(()));
    assert_eq!(executor.stats().failures, 1);
}
