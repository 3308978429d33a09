//! What the platform counts for `/metrics` outside the gateway: builds by outcome with their
//! durations, and the data dir's size (measured in the background).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the build duration buckets, in seconds.
const BUILD_BOUNDS_S: [f64; 8] = [5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];

/// Builds finished since the server started: counts by outcome and a duration histogram.
#[derive(Debug, Default)]
pub(crate) struct BuildStats {
    succeeded: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
    buckets: [AtomicU64; BUILD_BOUNDS_S.len() + 1],
    sum_ms: AtomicU64,
}

/// How a build ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BuildOutcome {
    Succeeded,
    Failed,
    Cancelled,
}

impl BuildStats {
    pub(crate) fn record(&self, outcome: BuildOutcome, took: Duration) {
        match outcome {
            BuildOutcome::Succeeded => &self.succeeded,
            BuildOutcome::Failed => &self.failed,
            BuildOutcome::Cancelled => &self.cancelled,
        }
        .fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let i = BUILD_BOUNDS_S
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUILD_BOUNDS_S.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ms
            .fetch_add(took.as_millis() as u64, Ordering::Relaxed);
    }

    /// The figures now, for `/metrics`.
    pub(crate) fn snapshot(&self) -> BuildCounts {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BuildCounts {
            counts: [
                load(&self.succeeded),
                load(&self.failed),
                load(&self.cancelled),
            ],
            buckets: BUILD_BOUNDS_S
                .iter()
                .copied()
                .chain(std::iter::once(f64::MAX))
                .zip(self.buckets.iter().map(load))
                .collect(),
            sum_s: load(&self.sum_ms) as f64 / 1000.0,
        }
    }
}

/// Builds by result (succeeded, failed, cancelled), the duration histogram's
/// per-bucket counts by upper bound, and the total seconds.
pub(crate) struct BuildCounts {
    pub(crate) counts: [u64; 3],
    pub(crate) buckets: Vec<(f64, u64)>,
    pub(crate) sum_s: f64,
}

/// The data dir's size, measured in the background (walking it on every scrape would make a
/// scrape cost as much as the tree is large).
#[derive(Debug, Default)]
pub(crate) struct DiskGauge {
    bytes: Mutex<Option<u64>>,
}

impl DiskGauge {
    pub(crate) fn set(&self, bytes: u64) {
        if let Ok(mut b) = self.bytes.lock() {
            *b = Some(bytes);
        }
    }

    pub(crate) fn get(&self) -> Option<u64> {
        self.bytes.lock().ok().and_then(|b| *b)
    }
}
