//! The dispatch time budget: how long the dispatcher may wait for slow watchers.
//!
//! The Kubernetes cacher's `timeBudget` (staging/src/k8s.io/apiserver/pkg/storage/cacher/
//! time_budget.go): the budget refills at `refill_per_second` of waiting per second of
//! clock time, is capped at `max`, and starts empty. An event with blocked watchers takes
//! everything available, waits out of it, and returns what it did not use. Refill follows
//! the cacher's clock; spending is the real time the dispatcher waited.

use std::time::Duration;

#[derive(Debug)]
pub(crate) struct Budget {
    refill_per_second: Duration,
    max: Duration,
    available: Duration,
    /// Clock time up to which refill has been credited.
    refilled_to: Duration,
}

impl Budget {
    pub(crate) fn new(refill_per_second: Duration, max: Duration, now: Duration) -> Self {
        Self { refill_per_second, max, available: Duration::ZERO, refilled_to: now }
    }

    fn refill(&mut self, now: Duration) {
        let elapsed = now.saturating_sub(self.refilled_to);
        self.refilled_to = self.refilled_to.max(now);
        let credit = self.refill_per_second.mul_f64(elapsed.as_secs_f64());
        self.available = (self.available + credit).min(self.max);
    }

    /// Takes all the waiting time available at `now`.
    pub(crate) fn take_available(&mut self, now: Duration) -> Duration {
        self.refill(now);
        std::mem::take(&mut self.available)
    }

    /// Gives back waiting time that was taken but not spent.
    pub(crate) fn return_unused(&mut self, unused: Duration) {
        self.available = (self.available + unused).min(self.max);
    }

    /// What is available at `now`, without taking it.
    pub(crate) fn available(&mut self, now: Duration) -> Duration {
        self.refill(now);
        self.available
    }
}

#[cfg(test)]
mod tests {
    use super::Budget;
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn starts_empty_refills_and_caps() {
        let mut budget = Budget::new(50 * MS, 100 * MS, Duration::ZERO);
        assert_eq!(budget.available(Duration::ZERO), Duration::ZERO);
        assert_eq!(budget.available(Duration::from_secs(1)), 50 * MS);
        assert_eq!(budget.available(Duration::from_millis(1500)), 75 * MS);
        assert_eq!(budget.available(Duration::from_secs(10)), 100 * MS);
    }

    #[test]
    fn take_and_return_unused() {
        let mut budget = Budget::new(50 * MS, 100 * MS, Duration::ZERO);
        let now = Duration::from_secs(2);
        assert_eq!(budget.take_available(now), 100 * MS);
        assert_eq!(budget.available(now), Duration::ZERO);
        budget.return_unused(30 * MS);
        assert_eq!(budget.available(now), 30 * MS);
        budget.return_unused(500 * MS);
        assert_eq!(budget.available(now), 100 * MS, "returns never exceed the cap");
    }

    #[test]
    fn clock_going_backwards_credits_nothing() {
        let mut budget = Budget::new(50 * MS, 100 * MS, Duration::from_secs(5));
        assert_eq!(budget.available(Duration::from_secs(1)), Duration::ZERO);
        assert_eq!(budget.available(Duration::from_secs(6)), 50 * MS);
    }
}
