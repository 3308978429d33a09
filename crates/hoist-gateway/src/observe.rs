//! What the gateway records about each request it answers for a service: counters and a
//! latency histogram per service (plain atomics, read by `/metrics` and the per-minute
//! sampler), and an access record handed to whoever keeps the access log.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (Prometheus' defaults, from 1 ms).
pub const LATENCY_BOUNDS_S: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BUCKETS: usize = LATENCY_BOUNDS_S.len() + 1;

/// Per-service request statistics since the server started.
#[derive(Debug, Default)]
pub struct RequestStats {
    /// Answers by status class: 1xx..5xx.
    classes: [AtomicU64; 5],
    /// Non-cumulative latency bucket counts; the last is above every bound.
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl RequestStats {
    pub fn observe(&self, status: u16, took: Duration, bytes_in: u64, bytes_out: u64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.classes[class].fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let bucket = LATENCY_BOUNDS_S
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            classes: std::array::from_fn(|i| load(&self.classes[i])),
            buckets: std::array::from_fn(|i| load(&self.buckets[i])),
            sum_us: load(&self.sum_us),
            bytes_in: load(&self.bytes_in),
            bytes_out: load(&self.bytes_out),
        }
    }
}

/// Counts at one moment; the difference of two is what happened in between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub classes: [u64; 5],
    pub buckets: [u64; BUCKETS],
    pub sum_us: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl StatsSnapshot {
    pub fn requests(&self) -> u64 {
        self.classes.iter().sum()
    }

    /// Answers with a 5xx status.
    pub fn errors(&self) -> u64 {
        self.classes[4]
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &StatsSnapshot) -> StatsSnapshot {
        StatsSnapshot {
            classes: std::array::from_fn(|i| self.classes[i].saturating_sub(earlier.classes[i])),
            buckets: std::array::from_fn(|i| self.buckets[i].saturating_sub(earlier.buckets[i])),
            sum_us: self.sum_us.saturating_sub(earlier.sum_us),
            bytes_in: self.bytes_in.saturating_sub(earlier.bytes_in),
            bytes_out: self.bytes_out.saturating_sub(earlier.bytes_out),
        }
    }

    /// The `q` quantile of latency in milliseconds, interpolated within its bucket as
    /// Prometheus' `histogram_quantile` does; `None` without requests.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut seen = 0u64;
        for (i, n) in self.buckets.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            if (seen + n) as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { LATENCY_BOUNDS_S[i - 1] };
                // Above the last bound there is nothing to interpolate towards.
                let Some(upper) = LATENCY_BOUNDS_S.get(i) else {
                    return Some(lower * 1000.0);
                };
                let within = (rank - seen as f64) / *n as f64;
                return Some((lower + (upper - lower) * within) * 1000.0);
            }
            seen += n;
        }
        Some(LATENCY_BOUNDS_S[LATENCY_BOUNDS_S.len() - 1] * 1000.0)
    }

    /// Buckets as `encode_histogram` takes them: (upper bound, non-cumulative count).
    pub fn histogram_buckets(&self) -> Vec<(f64, u64)> {
        LATENCY_BOUNDS_S
            .iter()
            .copied()
            .chain(std::iter::once(f64::MAX))
            .zip(self.buckets.iter().copied())
            .collect()
    }
}

/// One request the gateway answered for a service.
#[derive(Debug, Clone)]
pub struct AccessRecord {
    pub service: Arc<str>,
    /// When the request arrived (ms since the epoch).
    pub ts_ms: i64,
    pub method: hyper::Method,
    pub path: String,
    pub status: u16,
    pub duration: Duration,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The instance that answered, if any did (not for 503s from the activator).
    pub instance: Option<Arc<str>>,
    /// The request waited for an instance to start.
    pub cold: bool,
    /// The gateway answered from the service's static files (no instance involved).
    pub served_static: bool,
}

impl AccessRecord {
    /// The line kept in the service's access log.
    pub fn line(&self) -> String {
        // Tenths of a millisecond from integers: float formatting is the costliest part of
        // a line, and lines come at the gateway's rate.
        let tenths = (self.duration.as_micros() + 50) / 100;
        format!(
            "{} {} {} {}.{}ms in={} out={} instance={}{}{}",
            self.method,
            self.path,
            self.status,
            tenths / 10,
            tenths % 10,
            self.bytes_in,
            self.bytes_out,
            self.instance.as_deref().unwrap_or("-"),
            if self.cold { " cold" } else { "" },
            if self.served_static { " static" } else { "" }
        )
    }
}

/// Receives access records, a batch at a time. Called on the gateway's threads: it must not
/// block.
pub trait AccessLog: Send + Sync + 'static {
    fn record(&self, batch: Vec<AccessRecord>);
}

/// A gateway worker's access records since it last handed them over. One hand-over per
/// request would wake the log writer's thread once per request; under load records are
/// handed over in batches, at most `ACCESS_FLUSH_EVERY` after the first of them (or when a
/// batch is full). A record that comes after a quiet spell goes at once. An idle worker has
/// no timer running.
pub(crate) struct AccessBatch {
    inner: std::sync::Mutex<Pending>,
    /// Wakes the worker's flush task when a batch starts.
    started: tokio::sync::Notify,
}

struct Pending {
    records: Vec<AccessRecord>,
    handed_over: std::time::Instant,
}

impl Pending {
    /// The batch so far; the next starts with room for as many (growing a vector record by
    /// record means reallocations of ever larger blocks on the request path).
    fn take(&mut self) -> Vec<AccessRecord> {
        let room = self.records.len().clamp(16, ACCESS_BATCH);
        std::mem::replace(&mut self.records, Vec::with_capacity(room))
    }
}

pub(crate) const ACCESS_FLUSH_EVERY: Duration = Duration::from_millis(50);
const ACCESS_BATCH: usize = 1024;

impl Default for AccessBatch {
    fn default() -> AccessBatch {
        AccessBatch {
            inner: std::sync::Mutex::new(Pending {
                records: Vec::new(),
                handed_over: std::time::Instant::now(),
            }),
            started: tokio::sync::Notify::new(),
        }
    }
}

impl AccessBatch {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // Only this worker's thread takes the lock (its tasks and its flush task), so it is
        // never contended; a poisoned one still holds valid records.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn push(&self, record: AccessRecord, log: &dyn AccessLog) {
        let batch = {
            let mut p = self.lock();
            p.records.push(record);
            let first = p.records.len() == 1;
            if (first && p.handed_over.elapsed() >= ACCESS_FLUSH_EVERY)
                || p.records.len() >= ACCESS_BATCH
            {
                p.handed_over = std::time::Instant::now();
                Some(p.take())
            } else {
                if first {
                    self.started.notify_one();
                }
                None
            }
        };
        if let Some(batch) = batch {
            log.record(batch);
        }
    }

    /// Hands over what a batch holds `ACCESS_FLUSH_EVERY` after it started; runs until the
    /// worker stops it.
    pub(crate) async fn flush_started(&self, log: impl Fn() -> Option<Arc<dyn AccessLog>>) {
        loop {
            self.started.notified().await;
            tokio::time::sleep(ACCESS_FLUSH_EVERY).await;
            if let Some(log) = log() {
                self.flush(log.as_ref());
            }
        }
    }

    pub(crate) fn flush(&self, log: &dyn AccessLog) {
        let batch = {
            let mut p = self.lock();
            if p.records.is_empty() {
                return;
            }
            p.handed_over = std::time::Instant::now();
            p.take()
        };
        log.record(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_buckets_and_quantiles() {
        let s = RequestStats::default();
        for ms in [1, 2, 3, 4, 20, 40, 80, 2000] {
            s.observe(200, Duration::from_millis(ms), 10, 100);
        }
        s.observe(502, Duration::from_millis(3), 0, 50);
        s.observe(404, Duration::from_secs(30), 0, 50);
        let snap = s.snapshot();
        assert_eq!(snap.requests(), 10);
        assert_eq!(snap.errors(), 1);
        assert_eq!(snap.classes[1], 8);
        assert_eq!(snap.bytes_out, 900);
        // 30 s is beyond the last bound.
        assert_eq!(snap.buckets[BUCKETS - 1], 1);
        let p50 = snap.quantile_ms(0.5).unwrap();
        assert!((2.5..=5.0).contains(&p50), "{p50}");
        let p99 = snap.quantile_ms(0.99).unwrap();
        assert!(p99 >= 2500.0, "{p99}");
        let later = {
            s.observe(200, Duration::from_millis(1), 0, 0);
            s.snapshot()
        };
        let delta = later.since(&snap);
        assert_eq!(delta.requests(), 1);
        assert!(StatsSnapshot::default().quantile_ms(0.5).is_none());
        let buckets = snap.histogram_buckets();
        assert_eq!(buckets.len(), BUCKETS);
        assert_eq!(buckets[BUCKETS - 1].0, f64::MAX);
    }

    #[test]
    fn the_access_line_names_what_happened() {
        let r = AccessRecord {
            service: "shop".into(),
            ts_ms: 0,
            method: hyper::Method::GET,
            path: "/cart?id=1".into(),
            status: 200,
            duration: Duration::from_micros(3250),
            bytes_in: 0,
            bytes_out: 512,
            instance: Some("i-0123456789".into()),
            cold: true,
            served_static: false,
        };
        assert_eq!(
            r.line(),
            "GET /cart?id=1 200 3.3ms in=0 out=512 instance=i-0123456789 cold"
        );
        let r = AccessRecord {
            path: "/assets/app.3f9c1a2b.js".into(),
            instance: None,
            cold: false,
            served_static: true,
            ..r
        };
        assert_eq!(
            r.line(),
            "GET /assets/app.3f9c1a2b.js 200 3.3ms in=0 out=512 instance=- static"
        );
    }
}
