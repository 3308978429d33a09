//! The scheduler: the jobs of every service in one queue ordered by their next time, one
//! timer for its head, and a dispatch that applies the job's concurrency rule.
//!
//! The store is the truth: every change (an API call, a deploy) is written there first, and
//! the scheduler is told to [`Scheduler::reload`] that service, which reads its jobs again.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hoist_core::{CronConcurrency, CronJobId, CronJobSpec, CronRunStatus, ServiceName};
use hoist_store::{CronJobRecord, NewCronRun, Store, StoreError};
use jiff::Timestamp;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{Clock, CronMetrics, Hooks, Runner};

/// The scheduler's settings.
#[derive(Debug, Clone, Copy)]
pub struct SchedulerConfig {
    /// After a start, the most recent run missed while the server was down still runs if it
    /// was due at most this long ago.
    pub starting_deadline: Duration,
    /// Back-off before the first retry, doubled for each next one, up to `backoff_cap`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// At most this many missed runs are recorded per job after a start (a per-second job
    /// down for a day would otherwise write 86,400 rows); the last row says how many more.
    pub missed_rows_max: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            starting_deadline: Duration::from_secs(60),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            missed_rows_max: 100,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    pub(crate) service: ServiceName,
    pub(crate) job: CronJobId,
}

struct Entry {
    spec: CronJobSpec,
    paused: bool,
    /// Its place in the queue (ms), if scheduled.
    next: Option<i64>,
    /// Runs in flight: their number and how to cancel them (`replace`).
    in_flight: Vec<(u64, CancellationToken)>,
}

#[derive(Default)]
struct State {
    jobs: HashMap<Key, Entry>,
    queue: BTreeSet<(i64, Key)>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<Store>,
    pub(crate) runner: Arc<dyn Runner>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) hooks: Arc<dyn Hooks>,
    pub(crate) metrics: Arc<CronMetrics>,
    pub(crate) config: SchedulerConfig,
    state: Mutex<State>,
    wake: Notify,
    /// The runs in flight: a stop cancels and waits for them.
    pub(crate) runs: TaskTracker,
    pub(crate) stop: CancellationToken,
    seq: AtomicU64,
}

/// The cron scheduler. Cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    pub(crate) inner: Arc<Inner>,
}

/// A run to start, decided under the lock and started outside it.
struct Start {
    key: Key,
    spec: CronJobSpec,
    scheduled_ms: i64,
    seq: u64,
    cancel: CancellationToken,
}

impl Scheduler {
    pub fn new(
        store: Arc<Store>,
        runner: Arc<dyn Runner>,
        clock: Arc<dyn Clock>,
        hooks: Arc<dyn Hooks>,
        config: SchedulerConfig,
    ) -> Scheduler {
        Scheduler {
            inner: Arc::new(Inner {
                store,
                runner,
                clock,
                hooks,
                metrics: Arc::default(),
                config,
                state: Mutex::default(),
                wake: Notify::new(),
                runs: TaskTracker::new(),
                stop: CancellationToken::new(),
                seq: AtomicU64::new(0),
            }),
        }
    }

    pub fn metrics(&self) -> &Arc<CronMetrics> {
        &self.inner.metrics
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads every job from the store, as at a server start: runs left `running` by the last
    /// process are failed, runs due while it was down are recorded `missed`, and the most
    /// recent of them runs now if it is within the starting deadline.
    pub fn load(&self) -> Result<(), StoreError> {
        let store = &self.inner.store;
        let interrupted = store.fail_running_cron_runs("interrupted by server restart")?;
        if interrupted > 0 {
            tracing::info!(
                runs = interrupted,
                "cron runs interrupted by the restart failed"
            );
        }
        let now = self.inner.clock.now_ms();
        let mut starts = Vec::new();
        for record in store.list_cron_jobs(None)? {
            let key = Key {
                service: record.service.clone(),
                job: record.spec.id.clone(),
            };
            if !record.paused
                && let Some(last) = record.last_scheduled
                && let Some(due) = self.record_missed(&record, last, now)?
            {
                starts.push((key.clone(), due));
            }
            self.put(record, now);
        }
        for (key, due) in starts {
            let start = self.decide(&key, due, true);
            if let Some(start) = start {
                self.spawn(start);
            }
        }
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Records the runs of `job` due in `(last, now]` as missed, but the most recent if it is
    /// within the starting deadline: that one is returned, to run now.
    fn record_missed(
        &self,
        record: &CronJobRecord,
        last: i64,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let spec = &record.spec;
        let mut due = Vec::new();
        let mut total = 0usize;
        let mut at = Timestamp::from_millisecond(last).unwrap_or(Timestamp::UNIX_EPOCH);
        while let Some(next) = spec.next_after(at) {
            let ms = next.as_millisecond();
            if ms > now {
                break;
            }
            total += 1;
            // The first ones and the last are kept; the count says how many there were.
            if due.len() < self.inner.config.missed_rows_max {
                due.push(ms);
            } else if let Some(l) = due.last_mut() {
                *l = ms;
            }
            at = next;
        }
        let Some(&latest) = due.last() else {
            return Ok(None);
        };
        let deadline =
            i64::try_from(self.inner.config.starting_deadline.as_millis()).unwrap_or(i64::MAX);
        let run_latest = now - latest <= deadline;
        let missed = if run_latest {
            &due[..due.len() - 1]
        } else {
            &due[..]
        };
        let store = &self.inner.store;
        for (i, &ms) in missed.iter().enumerate() {
            let more = total - due.len();
            let detail = if i + 1 == missed.len() && more > 0 {
                format!("due while the server was down ({more} more not listed)")
            } else {
                "due while the server was down".to_string()
            };
            store.insert_cron_run(&NewCronRun {
                service: &record.service,
                job: &spec.id,
                execution: &execution_id(),
                scheduled_at: ms,
                started_at: None,
                finished_at: None,
                status: CronRunStatus::Missed,
                attempt: 0,
                detail: Some(&detail),
            })?;
            self.inner
                .metrics
                .count(&record.service, &spec.id, CronRunStatus::Missed);
        }
        store.set_cron_last_scheduled(&record.service, &spec.id, latest)?;
        Ok(run_latest.then_some(latest))
    }

    /// Puts a job in the tables, scheduled from `now` unless paused.
    fn put(&self, record: CronJobRecord, now: i64) {
        let key = Key {
            service: record.service,
            job: record.spec.id.clone(),
        };
        let mut state = self.state();
        let (in_flight, kept) = match state.jobs.remove(&key) {
            Some(old) => {
                if let Some(t) = old.next {
                    state.queue.remove(&(t, key.clone()));
                }
                // Unchanged, it keeps its place: a reload for another job of the service
                // must not skip a time that is due but not yet taken off the queue.
                let same = old.spec == record.spec && old.paused == record.paused;
                (old.in_flight, old.next.filter(|_| same))
            }
            None => (Vec::new(), None),
        };
        let next = kept.or_else(|| {
            (!record.paused)
                .then(|| next_ms(&record.spec, now))
                .flatten()
        });
        if let Some(t) = next {
            state.queue.insert((t, key.clone()));
        }
        state.jobs.insert(
            key,
            Entry {
                spec: record.spec,
                paused: record.paused,
                next,
                in_flight,
            },
        );
    }

    /// Reads a service's jobs again from the store (after any change to them); a service
    /// that is gone, or has no jobs, leaves the tables.
    pub fn reload(&self, service: &ServiceName) -> Result<(), StoreError> {
        let records = self.inner.store.list_cron_jobs(Some(service))?;
        let now = self.inner.clock.now_ms();
        {
            let mut state = self.state();
            let gone: Vec<Key> = state
                .jobs
                .keys()
                .filter(|k| &k.service == service && !records.iter().any(|r| r.spec.id == k.job))
                .cloned()
                .collect();
            for key in gone {
                if let Some(entry) = state.jobs.remove(&key)
                    && let Some(t) = entry.next
                {
                    state.queue.remove(&(t, key));
                }
            }
        }
        if records.is_empty() && self.inner.store.get_service(service)?.is_none() {
            self.inner.metrics.forget(service);
        }
        for record in records {
            self.put(record, now);
        }
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Runs a job now, once, whatever its schedule (and even if paused); its concurrency rule
    /// still applies. The execution id, or `None` if it was skipped (or there is no such job).
    pub fn run_now(&self, service: &ServiceName, job: &CronJobId) -> Option<String> {
        let key = Key {
            service: service.clone(),
            job: job.clone(),
        };
        let now = self.inner.clock.now_ms();
        let start = self.decide(&key, now, true)?;
        Some(self.spawn(start))
    }

    /// When the job runs next (ms), if it is scheduled.
    pub fn next_run(&self, service: &ServiceName, job: &CronJobId) -> Option<i64> {
        let key = Key {
            service: service.clone(),
            job: job.clone(),
        };
        self.state().jobs.get(&key).and_then(|e| e.next)
    }

    /// How many jobs are scheduled now.
    pub fn scheduled(&self) -> usize {
        self.state().queue.len()
    }

    /// Applies the job's concurrency rule to a run due at `scheduled_ms`: the run to start,
    /// or `None` when it is skipped (which is recorded).
    fn decide(&self, key: &Key, scheduled_ms: i64, manual: bool) -> Option<Start> {
        let mut state = self.state();
        let entry = state.jobs.get_mut(key)?;
        if entry.paused && !manual {
            return None;
        }
        let busy = !entry.in_flight.is_empty();
        match entry.spec.concurrency {
            CronConcurrency::Forbid if busy => {
                let spec = entry.spec.clone();
                drop(state);
                self.record_skipped(key, &spec, scheduled_ms);
                return None;
            }
            CronConcurrency::Replace => {
                for (_, cancel) in entry.in_flight.drain(..) {
                    cancel.cancel();
                }
            }
            _ => {}
        }
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        let cancel = self.inner.stop.child_token();
        entry.in_flight.push((seq, cancel.clone()));
        Some(Start {
            key: key.clone(),
            spec: entry.spec.clone(),
            scheduled_ms,
            seq,
            cancel,
        })
    }

    fn record_skipped(&self, key: &Key, spec: &CronJobSpec, scheduled_ms: i64) {
        let now = self.inner.clock.now_ms();
        let result = self.inner.store.insert_cron_run(&NewCronRun {
            service: &key.service,
            job: &spec.id,
            execution: &execution_id(),
            scheduled_at: scheduled_ms,
            started_at: None,
            finished_at: Some(now),
            status: CronRunStatus::Skipped,
            attempt: 0,
            detail: Some("the previous run was still in flight (concurrency forbid)"),
        });
        if let Err(e) = result {
            tracing::warn!(service = %key.service, job = %key.job, error = %e, "recording a skipped cron run");
        }
        self.inner
            .metrics
            .count(&key.service, &key.job, CronRunStatus::Skipped);
    }

    /// Starts a run in the background; its execution id.
    fn spawn(&self, start: Start) -> String {
        let execution = execution_id();
        let this = self.clone();
        let id = execution.clone();
        self.inner.runs.spawn(async move {
            let Start {
                key,
                spec,
                scheduled_ms,
                seq,
                cancel,
            } = start;
            crate::run::attempts(&this.inner, &key, &spec, scheduled_ms, &id, &cancel).await;
            let mut state = this.state();
            if let Some(entry) = state.jobs.get_mut(&key) {
                entry.in_flight.retain(|(s, _)| *s != seq);
            }
        });
        execution
    }

    /// The scheduler's loop: sleeps until the earliest due run across all jobs (or a change),
    /// starts what is due and schedules each job's next time. Returns once stopped, after the
    /// runs in flight are cancelled and recorded.
    pub async fn run(self) {
        loop {
            let now = self.inner.clock.now_ms();
            let mut due = Vec::new();
            let head = {
                let mut state = self.state();
                while let Some((t, _)) = state.queue.first() {
                    if *t > now {
                        break;
                    }
                    let Some((t, key)) = state.queue.pop_first() else {
                        break;
                    };
                    if let Some(entry) = state.jobs.get_mut(&key) {
                        // From the later of the due time and now: a scheduler that fell
                        // behind (a suspended machine) does not fire a burst to catch up.
                        entry.next = next_ms(&entry.spec, t.max(now - 1));
                        if let Some(n) = entry.next {
                            state.queue.insert((n, key.clone()));
                        }
                    }
                    due.push((t, key));
                }
                state.queue.first().map(|(t, _)| *t)
            };
            // Started first, recorded after: the store's write must not add to the lag.
            for (t, key) in &due {
                if let Some(start) = self.decide(key, *t, false) {
                    self.spawn(start);
                }
            }
            for (t, key) in due {
                if let Err(e) = self
                    .inner
                    .store
                    .set_cron_last_scheduled(&key.service, &key.job, t)
                {
                    tracing::warn!(service = %key.service, job = %key.job, error = %e, "recording a cron run's time");
                }
            }
            let sleep = head.map(|t| Duration::from_millis(u64::try_from(t - now).unwrap_or(0)));
            let wake = self.inner.wake.notified();
            tokio::select! {
                _ = async {
                    match sleep {
                        Some(d) => tokio::time::sleep(d).await,
                        None => std::future::pending().await,
                    }
                } => {}
                _ = wake => {}
                _ = self.inner.stop.cancelled() => break,
            }
        }
        self.inner.runs.close();
        self.inner.runs.wait().await;
    }

    /// Tells the loop to end (see [`Scheduler::run`]).
    pub fn stop(&self) {
        self.inner.stop.cancel();
    }
}

/// The next time of `spec` strictly after `after_ms`.
fn next_ms(spec: &CronJobSpec, after_ms: i64) -> Option<i64> {
    let after = Timestamp::from_millisecond(after_ms).ok()?;
    spec.next_after(after).map(|t| t.as_millisecond())
}

/// A fresh execution id: `x-` and 64 random bits in hex.
pub(crate) fn execution_id() -> String {
    format!("x-{:016x}", rand::random::<u64>())
}
