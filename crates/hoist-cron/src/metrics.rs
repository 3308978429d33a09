//! Counters for `/metrics`: runs by service, job and result, and the lag from a run's
//! scheduled time to its request being sent (a histogram).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hoist_core::{CronJobId, CronRunStatus, ServiceName};

/// Upper bounds of the lag histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

#[derive(Default)]
pub struct CronMetrics {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    runs: BTreeMap<(String, String, &'static str), u64>,
    lag_counts: [u64; BUCKETS.len()],
    lag_count: u64,
    lag_sum_s: f64,
}

/// What a scrape reads.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    /// (service, job, result) → runs.
    pub runs: Vec<(String, String, &'static str, u64)>,
    /// Cumulative buckets: (upper bound in seconds, count at or below it).
    pub lag_buckets: Vec<(f64, u64)>,
    pub lag_count: u64,
    pub lag_sum_s: f64,
}

impl CronMetrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn count(&self, service: &ServiceName, job: &CronJobId, result: CronRunStatus) {
        let key = (service.to_string(), job.to_string(), result.as_str());
        *self.lock().runs.entry(key).or_default() += 1;
    }

    pub(crate) fn lag(&self, lag: Duration) {
        let s = lag.as_secs_f64();
        let mut m = self.lock();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if s <= *bound {
                m.lag_counts[i] += 1;
            }
        }
        m.lag_count += 1;
        m.lag_sum_s += s;
    }

    /// Forgets a removed service's counters.
    pub(crate) fn forget(&self, service: &ServiceName) {
        self.lock()
            .runs
            .retain(|(s, _, _), _| s != service.as_str());
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let m = self.lock();
        MetricsSnapshot {
            runs: m
                .runs
                .iter()
                .map(|((s, j, r), n)| (s.clone(), j.clone(), *r, *n))
                .collect(),
            lag_buckets: BUCKETS.iter().copied().zip(m.lag_counts).collect(),
            lag_count: m.lag_count,
            lag_sum_s: m.lag_sum_s,
        }
    }
}
