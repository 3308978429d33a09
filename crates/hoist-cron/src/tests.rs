//! The scheduling logic on a fake clock (tokio's paused time, which jumps to the next timer
//! whenever every task waits) and a fake runner that answers as each test says, against a
//! real store in a temp directory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use hoist_core::{CronConcurrency, CronJobId, CronJobSpec, CronRunStatus, CronSource, ServiceName};
use hoist_store::{CronRunRecord, Store};

use crate::*;

struct FakeClock {
    base: i64,
    start: tokio::time::Instant,
}

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.base + self.start.elapsed().as_millis() as i64
    }
}

type Plan = Box<dyn Fn(&Call) -> (Duration, Option<u16>) + Send + Sync>;

struct FakeRunner {
    clock: Arc<FakeClock>,
    /// Each call with the clock's time when it arrived.
    calls: Mutex<Vec<(Call, i64)>>,
    plan: Plan,
}

impl Runner for Arc<FakeRunner> {
    fn call(&self, call: Call) -> BoxFuture<'static, Answer> {
        let at = self.clock.now_ms();
        let (delay, status) = (self.plan)(&call);
        self.calls.lock().unwrap().push((call, at));
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Answer {
                status,
                instance: Some("i-fake".into()),
                error: status.is_none().then(|| "connection refused".into()),
            }
        })
    }
}

#[derive(Default)]
struct FakeHooks(Mutex<Vec<Failure>>);

impl Hooks for Arc<FakeHooks> {
    fn run_failed(&self, failure: &Failure) {
        self.0.lock().unwrap().push(failure.clone());
    }
}

struct Setup {
    store: Arc<Store>,
    runner: Arc<FakeRunner>,
    hooks: Arc<FakeHooks>,
    scheduler: Scheduler,
    web: ServiceName,
    /// The fake clock's time at the start (ms).
    base: i64,
    dir: std::path::PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A store with service `web`, and a scheduler whose clock starts `offset_ms` after now.
fn setup(test: &str, offset_ms: i64, plan: Plan) -> Setup {
    let dir = std::env::temp_dir().join(format!("hoist-cron-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(Store::open(&dir.join("hoist.db")).unwrap());
    let web: ServiceName = "web".parse().unwrap();
    store.ensure_service(&web).unwrap();
    // On a whole second, so per-second schedules are due at round offsets.
    let base = (hoist_store::now_ms() / 1000 + 1) * 1000 + offset_ms;
    let clock = Arc::new(FakeClock {
        base,
        start: tokio::time::Instant::now(),
    });
    let runner = Arc::new(FakeRunner {
        clock: clock.clone(),
        calls: Mutex::default(),
        plan,
    });
    let hooks = Arc::new(FakeHooks::default());
    let scheduler = Scheduler::new(
        store.clone(),
        Arc::new(runner.clone()),
        clock,
        Arc::new(hooks.clone()),
        SchedulerConfig::default(),
    );
    Setup {
        store,
        runner,
        hooks,
        scheduler,
        web,
        base,
        dir,
    }
}

fn job(id: &str, schedule: &str, concurrency: CronConcurrency, retries: u32) -> CronJobSpec {
    CronJobSpec {
        id: id.parse().unwrap(),
        schedule: schedule.parse().unwrap(),
        path: "/tick".parse().unwrap(),
        method: Default::default(),
        timezone: Default::default(),
        timeout: Duration::from_secs(30),
        concurrency,
        retries,
    }
}

impl Setup {
    fn add(&self, spec: &CronJobSpec) {
        assert!(
            self.store
                .insert_cron_job(&self.web, spec, CronSource::Api)
                .unwrap()
        );
        self.scheduler.reload(&self.web).unwrap();
    }

    fn start(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.scheduler.clone().run())
    }

    fn calls(&self) -> Vec<(Call, i64)> {
        self.runner.calls.lock().unwrap().clone()
    }

    /// Runs of a job, oldest first.
    fn runs(&self, job: &str) -> Vec<CronRunRecord> {
        let job: CronJobId = job.parse().unwrap();
        let mut runs = self
            .store
            .list_cron_runs(&self.web, Some(&job), 1000)
            .unwrap();
        runs.reverse();
        runs
    }

    async fn stop(self, task: tokio::task::JoinHandle<()>) {
        self.scheduler.stop();
        task.await.unwrap();
    }
}

fn ok_at_once() -> Plan {
    Box::new(|_| (Duration::ZERO, Some(200)))
}

#[tokio::test(start_paused = true)]
async fn a_per_second_job_fires_at_each_second_on_time() {
    let s = setup("every-second", 0, ok_at_once());
    s.add(&job("tick", "* * * * * *", CronConcurrency::Forbid, 0));
    let task = s.start();
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    let calls = s.calls();
    assert!((5..=6).contains(&calls.len()), "{} calls", calls.len());
    for w in calls.windows(2) {
        assert_eq!(w[1].0.scheduled_ms - w[0].0.scheduled_ms, 1000);
    }
    for (call, at) in &calls {
        assert_eq!(call.scheduled_ms % 1000, 0);
        assert!(
            at - call.scheduled_ms <= 1,
            "late by {} ms",
            at - call.scheduled_ms
        );
        assert_eq!(call.attempt, 1);
    }
    let runs = s.runs("tick");
    assert!(runs.iter().all(|r| r.status == CronRunStatus::Ok));
    assert_eq!(runs[0].instance.as_deref(), Some("i-fake"));
    let snap = s.scheduler.metrics().snapshot();
    assert!(snap.lag_count >= 5 && snap.lag_buckets[0].1 == snap.lag_count);
    s.stop(task).await;
}

#[tokio::test(start_paused = true)]
async fn forbid_skips_while_the_previous_run_is_in_flight() {
    let s = setup(
        "forbid",
        0,
        Box::new(|_| (Duration::from_millis(2_500), Some(200))),
    );
    s.add(&job("slow", "* * * * * *", CronConcurrency::Forbid, 0));
    let task = s.start();
    tokio::time::sleep(Duration::from_millis(6_200)).await;
    let runs = s.runs("slow");
    let count = |st| runs.iter().filter(|r| r.status == st).count();
    // Runs at 1 s and 4 s (each 2.5 s long); 2, 3, 5 and 6 are skipped.
    assert_eq!(s.calls().len(), 2, "{runs:?}");
    assert_eq!(count(CronRunStatus::Skipped), 4, "{runs:?}");
    assert!(
        runs.iter()
            .filter(|r| r.status == CronRunStatus::Skipped)
            .all(|r| r.detail.as_deref().unwrap_or("").contains("forbid"))
    );
    s.stop(task).await;
}

#[tokio::test(start_paused = true)]
async fn allow_overlaps_and_replace_cancels_the_previous_run() {
    let s = setup(
        "replace",
        0,
        Box::new(|_| (Duration::from_millis(2_500), Some(200))),
    );
    s.add(&job("both", "* * * * * *", CronConcurrency::Allow, 0));
    s.add(&job("newest", "* * * * * *", CronConcurrency::Replace, 0));
    let task = s.start();
    tokio::time::sleep(Duration::from_millis(4_200)).await;
    let both = s.runs("both");
    assert_eq!(both.len(), 4);
    assert!(both.iter().all(|r| r.status != CronRunStatus::Skipped));
    let newest = s.runs("newest");
    let replaced: Vec<_> = newest
        .iter()
        .filter(|r| r.detail.as_deref().is_some_and(|d| d.contains("replaced")))
        .collect();
    assert_eq!(replaced.len(), 3, "{newest:?}");
    assert!(replaced.iter().all(|r| r.status == CronRunStatus::Failed));
    // A replaced run is not an event: the job said to replace it.
    assert!(s.hooks.0.lock().unwrap().is_empty());
    s.stop(task).await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_run_is_retried_with_backoff_and_the_same_execution_id() {
    let plan: Plan = Box::new(|c| (Duration::ZERO, Some(if c.attempt < 3 { 503 } else { 200 })));
    let s = setup("retry", 0, plan);
    s.add(&job("flaky", "0 * * * *", CronConcurrency::Forbid, 3));
    let execution = s
        .scheduler
        .run_now(&s.web, &"flaky".parse().unwrap())
        .unwrap();
    let task = s.start();
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let calls = s.calls();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|(c, _)| c.execution == execution));
    // 1 s, then 2 s of back-off.
    assert_eq!(calls[1].1 - calls[0].1, 1000);
    assert_eq!(calls[2].1 - calls[1].1, 2000);
    let runs = s.runs("flaky");
    let statuses: Vec<_> = runs
        .iter()
        .map(|r| (r.attempt, r.status, r.http_status))
        .collect();
    assert_eq!(
        statuses,
        [
            (1, CronRunStatus::Retried, Some(503)),
            (2, CronRunStatus::Retried, Some(503)),
            (3, CronRunStatus::Ok, Some(200)),
        ]
    );
    assert!(s.hooks.0.lock().unwrap().is_empty());
    s.stop(task).await;
}

#[tokio::test(start_paused = true)]
async fn a_run_that_keeps_failing_is_an_event_after_its_last_retry() {
    let s = setup("fail", 0, Box::new(|_| (Duration::ZERO, None)));
    s.add(&job("down", "0 * * * *", CronConcurrency::Forbid, 1));
    s.scheduler
        .run_now(&s.web, &"down".parse().unwrap())
        .unwrap();
    let task = s.start();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let failures = s.hooks.0.lock().unwrap().clone();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].attempts, 2);
    assert!(
        failures[0].detail.contains("connection refused"),
        "{}",
        failures[0].detail
    );
    let runs = s.runs("down");
    assert_eq!(runs.last().unwrap().status, CronRunStatus::Failed);
    s.stop(task).await;
}

#[tokio::test(start_paused = true)]
async fn a_timeout_fails_the_attempt() {
    let s = setup(
        "timeout",
        0,
        Box::new(|_| (Duration::from_secs(3600), Some(200))),
    );
    let mut spec = job("hang", "0 * * * *", CronConcurrency::Forbid, 0);
    spec.timeout = Duration::from_secs(5);
    s.add(&spec);
    s.scheduler.run_now(&s.web, &spec.id).unwrap();
    let task = s.start();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let runs = s.runs("hang");
    assert_eq!(runs[0].status, CronRunStatus::Failed);
    assert!(
        runs[0].detail.as_deref().unwrap().contains("timeout of 5s"),
        "{runs:?}"
    );
    s.stop(task).await;
}

#[tokio::test(start_paused = true)]
async fn runs_missed_while_down_are_recorded_and_the_latest_runs_at_start() {
    // The job was added "now"; the scheduler's clock starts 10 s later, as after a crash.
    let s = setup("missed", 10_000, ok_at_once());
    let spec = job("tick", "* * * * * *", CronConcurrency::Forbid, 0);
    assert!(
        s.store
            .insert_cron_job(&s.web, &spec, CronSource::Api)
            .unwrap()
    );
    s.scheduler.load().unwrap();
    let task = s.start();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let runs = s.runs("tick");
    let missed: Vec<_> = runs
        .iter()
        .filter(|r| r.status == CronRunStatus::Missed)
        .collect();
    assert!((9..=11).contains(&missed.len()), "{} missed", missed.len());
    let calls = s.calls();
    // The latest missed one ran at start, then the schedule went on.
    assert!(calls.len() >= 3, "{calls:?}");
    assert!(calls[0].0.scheduled_ms > missed.last().unwrap().scheduled_at);
    assert_eq!(calls[1].0.scheduled_ms - calls[0].0.scheduled_ms, 1000);
    s.stop(task).await;
}

#[tokio::test(start_paused = true)]
async fn outside_the_starting_deadline_nothing_runs_at_start() {
    // Down two hours; the daily job was due 30 minutes before the start.
    let s = setup("deadline", 2 * 3_600_000, ok_at_once());
    let due = jiff::Timestamp::from_millisecond(s.base - 30 * 60_000).unwrap();
    let utc = due.to_zoned(jiff::tz::TimeZone::UTC);
    let daily = format!("{} {} {} * * *", utc.second(), utc.minute(), utc.hour());
    let spec = job("daily", &daily, CronConcurrency::Forbid, 0);
    assert!(
        s.store
            .insert_cron_job(&s.web, &spec, CronSource::Api)
            .unwrap()
    );
    // A per-second job down as long: its rows are capped, the last says how many more.
    let busy = job("busy", "* * * * * *", CronConcurrency::Forbid, 0);
    assert!(
        s.store
            .insert_cron_job(&s.web, &busy, CronSource::Api)
            .unwrap()
    );
    s.scheduler.load().unwrap();
    let runs = s.runs("daily");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        (runs[0].status, runs[0].scheduled_at),
        (CronRunStatus::Missed, due.as_millisecond())
    );
    let busy = s.runs("busy");
    assert_eq!(busy.len(), 99, "100 kept, the latest of them runs");
    assert!(
        busy.last()
            .unwrap()
            .detail
            .as_deref()
            .unwrap()
            .contains("more not listed")
    );
    let task = s.start();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(s.calls().iter().all(|(c, _)| c.job.as_str() == "busy"));
    s.stop(task).await;
}

#[tokio::test(start_paused = true)]
async fn paused_jobs_do_not_run_and_a_thousand_idle_jobs_wait_on_one_timer() {
    let s = setup("idle", 0, ok_at_once());
    let spec = job("tick", "* * * * * *", CronConcurrency::Forbid, 0);
    s.add(&spec);
    assert!(s.store.set_cron_paused(&s.web, &spec.id, true).unwrap());
    s.scheduler.reload(&s.web).unwrap();
    for i in 0..1000 {
        let spec = job(
            &format!("daily-{i}"),
            "0 0 * * *",
            CronConcurrency::Forbid,
            0,
        );
        assert!(
            s.store
                .insert_cron_job(&s.web, &spec, CronSource::Api)
                .unwrap()
        );
    }
    s.scheduler.reload(&s.web).unwrap();
    assert_eq!(s.scheduler.scheduled(), 1000);
    let task = s.start();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(s.calls().is_empty());
    assert!(s.store.set_cron_paused(&s.web, &spec.id, false).unwrap());
    s.scheduler.reload(&s.web).unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(!s.calls().is_empty());
    // Removed from the store and reloaded: gone from the queue.
    s.store.delete_cron_job(&s.web, &spec.id).unwrap();
    s.scheduler.reload(&s.web).unwrap();
    assert_eq!(s.scheduler.scheduled(), 1000);
    s.stop(task).await;
}

#[test]
fn backoff_doubles_up_to_its_cap() {
    let (base, cap) = (Duration::from_secs(1), Duration::from_secs(60));
    let waits: Vec<u64> = (1..=8).map(|a| backoff(a, base, cap).as_secs()).collect();
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
}

#[tokio::test(start_paused = true)]
async fn a_reload_for_another_job_keeps_a_due_time_not_yet_taken() {
    let s = setup("reload", 0, ok_at_once());
    let tick = job("tick", "* * * * * *", CronConcurrency::Forbid, 0);
    s.add(&tick);
    let due = s.scheduler.next_run(&s.web, &tick.id).unwrap();
    // The loop is not running: the time passes with the run still on the queue.
    tokio::time::advance(Duration::from_millis(1_500)).await;
    s.add(&job("other", "0 0 * * *", CronConcurrency::Forbid, 0));
    assert_eq!(s.scheduler.next_run(&s.web, &tick.id), Some(due));
    let task = s.start();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let calls = s.calls();
    assert_eq!(
        calls.first().map(|(c, _)| c.scheduled_ms),
        Some(due),
        "{calls:?}"
    );
    s.stop(task).await;
}
