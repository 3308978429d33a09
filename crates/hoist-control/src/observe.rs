//! What the platform shows users about their services: the access log (one line per request
//! the gateway answered), events (5xx answers, crashes, failed starts, each with the log lines
//! around it), per-minute metrics over the last day, and retention of all of it.
//!
//! The gateway hands access records over a bounded queue and never waits: when the queue is
//! full a record is dropped and counted, and the count is written to the service's log.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hoist_core::ServiceName;
use hoist_gateway::{AccessRecord, StatsSnapshot};
use hoist_store::{LogStream, MinuteMetrics, NewEvent, NewLogLine, now_ms};
use tokio::sync::mpsc;

use crate::access::{AccessItem, AccessQueue};
use crate::platform::Platform;

/// At most this many `http_5xx` events per service per second; the rest are counted in the
/// next one.
const ERROR_EVENTS_PER_SECOND: u32 = 1;
const MINUTE: Duration = Duration::from_secs(60);
/// Minutes of metrics kept.
const METRICS_KEPT_MS: i64 = 24 * 60 * 60 * 1000;

/// Per-service state of the 5xx event rate limit.
#[derive(Default)]
struct ErrorWindow {
    second: i64,
    sent: u32,
    suppressed: u64,
}

impl Platform {
    /// Connects the gateway's access records to the log and starts the background work:
    /// the access writer, the minute sampler and retention.
    pub(crate) fn start_observers(self: &Arc<Self>) {
        let (queue, rx) = AccessQueue::new();
        self.gateway.set_access_log(queue.clone());
        let _ = self.access_queue.set(queue.clone());
        self.writers
            .spawn("access writer", self.clone().write_access(rx, queue));
        self.tasks
            .spawn("metrics sampler", self.clone().sample_minutes());
        self.tasks
            .spawn("retention", self.clone().apply_retention());
        self.tasks
            .spawn("disk gauge", self.clone().measure_data_dir());
        self.tasks.spawn("log index", self.clone().index_logs());
    }

    /// Returns once the access records the gateway has handed over and every log line
    /// written so far are stored. A stopping server calls it after the gateway has drained,
    /// so the log of its last requests survives the restart. After [`Platform::shutdown`] it
    /// is the last step: the writers end (waited for), and later lines are dropped.
    pub async fn flush_logs(&self) {
        if let Some(queue) = self.access_queue.get() {
            queue.passed().await;
        }
        self.logs.flushed().await;
        if self.shutdown.is_cancelled() {
            // The access writer drains its queue, then closes the log hub behind its lines.
            self.writers.stop().await;
        }
    }

    /// Keeps the trigram index of log lines (what `--grep` uses) up with what is stored, in
    /// batches small enough that storing lines never waits long behind it.
    async fn index_logs(self: Arc<Self>) {
        const BATCH: usize = 2000;
        loop {
            let store = self.store.clone();
            let indexed = tokio::task::spawn_blocking(move || store.index_logs(BATCH)).await;
            let pause = match indexed {
                Ok(Ok(n)) if n == BATCH => Duration::ZERO,
                Ok(Ok(_)) => Duration::from_millis(250),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "indexing log lines");
                    Duration::from_secs(5)
                }
                Err(_) => Duration::from_secs(5),
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }

    async fn write_access(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<AccessItem>,
        queue: Arc<AccessQueue>,
    ) {
        let mut windows: HashMap<Arc<str>, ErrorWindow> = HashMap::new();
        let stop = self.writers.stopping().clone();
        loop {
            let item = tokio::select! {
                biased;
                item = rx.recv() => item,
                // Told to stop: what is queued still goes to the log, nothing after it.
                _ = stop.cancelled() => rx.try_recv().ok(),
            };
            let Some(item) = item else {
                break;
            };
            let batch = match item {
                AccessItem::Batch(b) => b,
                AccessItem::Passed(done) => {
                    let _ = done.send(());
                    continue;
                }
            };
            let mut lines = Vec::with_capacity(batch.len());
            for r in batch {
                if r.status >= 500 {
                    self.error_event(&mut windows, &r);
                }
                let line = r.line();
                lines.push(NewLogLine {
                    service: r.service.to_string(),
                    deployment: None,
                    instance: r.instance.as_deref().map(str::to_string),
                    stream: LogStream::Access,
                    ts: r.ts_ms,
                    line,
                });
            }
            self.logs.try_write_many(lines);
            let dropped = queue.take_dropped();
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    "access records dropped: the gateway outran the log writer"
                );
            }
        }
        self.logs.close().await;
    }

    fn error_event(&self, windows: &mut HashMap<Arc<str>, ErrorWindow>, r: &AccessRecord) {
        let second = r.ts_ms / 1000;
        let w = windows.entry(r.service.clone()).or_default();
        // Only a later second opens a new window: each gateway worker hands over its own
        // batches, so records of an earlier second can arrive after a later one's, and going
        // back to their second would allow a second event in it.
        if second > w.second {
            w.second = second;
            w.sent = 0;
        }
        if w.sent >= ERROR_EVENTS_PER_SECOND {
            w.suppressed += 1;
            return;
        }
        w.sent += 1;
        let more = std::mem::take(&mut w.suppressed);
        let mut detail = format!(
            "{} {} answered {} after {:.1} ms",
            r.method,
            r.path,
            r.status,
            r.duration.as_secs_f64() * 1000.0
        );
        if more > 0 {
            detail.push_str(&format!(" ({more} more 5xx answers since the last event)"));
        }
        let instance = r.instance.as_deref().map(str::to_string);
        self.events.record(NewEvent {
            service: r.service.to_string(),
            ts: r.ts_ms,
            kind: hoist_core::EventKind::Http5xx,
            instance,
            deployment: None,
            detail,
            context: Vec::new(),
        });
    }

    /// Once a minute, per service: requests, 5xx, latency quantiles (from the gateway's
    /// histogram), instances, their memory and the CPU time they used.
    async fn sample_minutes(self: Arc<Self>) {
        let mut last: HashMap<ServiceName, (StatsSnapshot, u64)> = HashMap::new();
        let step = (self.config.retention.metrics_resolution.as_millis() as i64).max(100);
        loop {
            let now = now_ms();
            let next = (now / step + 1) * step;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis((next - now).max(0) as u64)) => {}
                _ = self.shutdown.cancelled() => return,
            }
            let minute = next - step;
            let samples = self.sample(&mut last, minute);
            let store = self.store.clone();
            let _ = tokio::task::spawn_blocking(move || {
                for (service, m) in samples {
                    if let Err(e) = store.put_minute(&service, &m) {
                        tracing::warn!(error = %e, "storing minute metrics");
                    }
                }
            })
            .await;
        }
    }

    fn sample(
        &self,
        last: &mut HashMap<ServiceName, (StatsSnapshot, u64)>,
        minute: i64,
    ) -> Vec<(String, MinuteMetrics)> {
        let services = self.state();
        let mut out = Vec::with_capacity(services.len());
        for (name, state) in services.iter() {
            let stats = state.pool.stats().snapshot();
            let instances = state.live.as_ref().map_or(&[][..], |l| &l.instances[..]);
            let mut memory = 0u64;
            let mut cpu_ns = 0u64;
            for i in instances {
                let c = i.shared.stats();
                memory += c.memory_bytes;
                cpu_ns += c.cpu_usage_ns;
            }
            let (prev_stats, prev_cpu) = last.get(name).copied().unwrap_or_default();
            let delta = stats.since(&prev_stats);
            // Instances come and go; CPU that went down went with one that stopped.
            let cpu_ms = cpu_ns.saturating_sub(prev_cpu) / 1_000_000;
            last.insert(name.clone(), (stats, cpu_ns));
            out.push((
                name.to_string(),
                MinuteMetrics {
                    minute,
                    requests: delta.requests(),
                    errors: delta.errors(),
                    p50_ms: delta.quantile_ms(0.5),
                    p95_ms: delta.quantile_ms(0.95),
                    p99_ms: delta.quantile_ms(0.99),
                    instances: instances.len() as u64,
                    memory_mb: memory as f64 / (1024.0 * 1024.0),
                    cpu_ms,
                },
            ));
        }
        out
    }

    /// Every few minutes: logs and events past their age, metrics past a day. (The size cap
    /// per service is applied as lines are stored.)
    async fn apply_retention(self: Arc<Self>) {
        loop {
            let retention = self.config.retention;
            let store = self.store.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let now = now_ms();
                let cutoff = now - retention.max_age.as_millis() as i64;
                match store.prune_logs_before(cutoff) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(lines = n, "removed log lines past their retention"),
                    Err(e) => tracing::warn!(error = %e, "log retention"),
                }
                if let Err(e) = store.prune_observations(now - METRICS_KEPT_MS, cutoff) {
                    tracing::warn!(error = %e, "metrics retention");
                }
                // Cron runs are kept as long as logs.
                if let Err(e) = store.prune_cron_runs_before(cutoff) {
                    tracing::warn!(error = %e, "cron run retention");
                }
            })
            .await;
            // Often enough that nothing outlives its age by much more than a quarter of it.
            let every = (retention.max_age / 4).clamp(Duration::from_secs(1), MINUTE * 5);
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }
}
