//! The cron scheduler: every service's jobs on one timer (the next due run across all of
//! them, so a thousand idle jobs cost nothing between runs), runs as HTTP requests through
//! the gateway's own listener (`http.rs`), with concurrency rules, retries with capped
//! back-off, runs missed while the server was down, and each attempt recorded in the store.
//!
//! The boundaries are traits so the scheduling logic is tested on a fake clock (tokio's
//! paused time) and a fake runner: [`Clock`], [`Runner`], [`Hooks`].

mod http;
mod metrics;
mod run;
mod scheduler;
#[cfg(test)]
mod tests;

use std::time::Duration;

use futures_util::future::BoxFuture;
use hoist_core::{CronJobId, CronMethod, CronPath, ServiceName};

pub use http::{GatewayRunner, Secrets};
pub use metrics::{CronMetrics, MetricsSnapshot};
pub use scheduler::{Scheduler, SchedulerConfig};

/// Wall-clock time in milliseconds since the Unix epoch. Schedules are wall-clock times, and
/// sleeps to them are measured from this clock.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        jiff::Timestamp::now().as_millisecond()
    }
}

/// One attempt of a run, as the runner sends it.
#[derive(Debug, Clone)]
pub struct Call {
    pub service: ServiceName,
    pub job: CronJobId,
    pub method: CronMethod,
    pub path: CronPath,
    /// The scheduled time (ms), sent as `X-Hoist-Schedule-Time`.
    pub scheduled_ms: i64,
    /// The same for every attempt of a run (`X-Hoist-Execution-Id`).
    pub execution: String,
    pub attempt: u32,
}

/// What came back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status, if the request was answered.
    pub status: Option<u16>,
    /// The instance that answered, when the gateway says.
    pub instance: Option<String>,
    /// Why there was no answer.
    pub error: Option<String>,
}

/// Sends a run's request; dropping the future cancels it (a `replace` does that).
pub trait Runner: Send + Sync + 'static {
    fn call(&self, call: Call) -> BoxFuture<'static, Answer>;
}

/// What the platform hears from the scheduler.
pub trait Hooks: Send + Sync + 'static {
    /// A run failed after its last attempt: an event for `hoist events`.
    fn run_failed(&self, failure: &Failure);
}

/// A run that failed for good.
#[derive(Debug, Clone)]
pub struct Failure {
    pub service: ServiceName,
    pub job: CronJobId,
    pub execution: String,
    pub attempts: u32,
    pub detail: String,
    pub instance: Option<String>,
}

/// How long to wait before attempt `attempt + 1` after attempt `attempt` failed: `base`
/// doubled each time, at most `cap`.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(20);
    base.saturating_mul(factor).min(cap)
}
