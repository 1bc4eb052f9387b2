//! What the process, or one thread, used: CPU time and peak memory, from `getrusage`.

use std::time::Duration;

/// CPU time (user + system) and peak resident memory of this process so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Usage {
    pub(crate) cpu: Duration,
    pub(crate) peak_rss_bytes: u64,
}

impl Usage {
    /// The process's, now; zeros where `getrusage` fails.
    pub(crate) fn now() -> Self {
        Self::of(libc::RUSAGE_SELF)
    }

    /// The calling thread's, now (its peak memory is the process's).
    pub(crate) fn this_thread() -> Self {
        Self::of(libc::RUSAGE_THREAD)
    }

    fn of(who: libc::c_int) -> Self {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: `getrusage` writes a `rusage` into the pointer it is given, which points
        // to one of the right size; on failure it writes nothing and returns -1.
        let status = unsafe { libc::getrusage(who, usage.as_mut_ptr()) };
        if status != 0 {
            return Self::default();
        }
        // SAFETY: `getrusage` succeeded, so it initialised the struct (and zeroed() made
        // every field a valid integer anyway).
        let usage = unsafe { usage.assume_init() };
        let time = |value: libc::timeval| {
            Duration::from_secs(value.tv_sec.max(0) as u64)
                + Duration::from_micros(value.tv_usec.max(0) as u64)
        };
        Self {
            cpu: time(usage.ru_utime) + time(usage.ru_stime),
            // Linux reports kilobytes.
            peak_rss_bytes: (usage.ru_maxrss.max(0) as u64) * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Usage;

    #[test]
    fn cpu_time_counts_this_threads_work() {
        let before = Usage::now();
        // Spin for 20 ms of wall time: the thread runs for some of it, however loaded
        // the machine, and the kernel accounts CPU time to the microsecond.
        let started = std::time::Instant::now();
        let mut spin = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(20) {
            spin = std::hint::black_box(spin.wrapping_add(1));
        }
        let after = Usage::now();
        assert!(after.cpu > before.cpu, "{before:?} then {after:?}");
        assert!(after.peak_rss_bytes > 0);
        let thread = Usage::this_thread();
        assert!(thread.cpu > std::time::Duration::ZERO && thread.cpu <= after.cpu, "{thread:?} of {after:?}");
    }
}
