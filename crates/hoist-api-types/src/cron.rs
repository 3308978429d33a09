//! Cron jobs and their runs: `/v1/services/{name}/cron…`.

use hoist_core::{
    CRON_TIMEOUT_DEFAULT, CronConcurrency, CronJobId, CronJobSpec, CronMethod, CronPath,
    CronRunStatus, CronSchedule, CronSource, CronTimezone, SpecError, check_cron_retries,
    parse_cron_timeout,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `POST /v1/services/{name}/cron`: a job to add. Every field is checked, and a bad one is
/// answered `400` naming it and what was expected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CronJobRequest {
    /// Five fields (minute hour day-of-month month day-of-week), or six with a leading
    /// seconds field: `*/5 * * * *`, `*/10 * * * * *`.
    pub schedule: String,
    /// The path (and query) requested: `/tasks/cleanup`.
    pub path: String,
    /// GET (default), POST, PUT, PATCH or DELETE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// An IANA time zone the schedule is read in (default UTC): `Europe/Berlin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// How long one attempt may take, with a unit (default `3m`, 1s to 15m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// `forbid` (default), `allow` or `replace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<String>,
    /// Retries of a failed run (0 to 10, default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    /// The job's id (default: made from the path, `/tasks/cleanup` → `tasks-cleanup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

impl CronJobRequest {
    /// The job it asks for, every field checked (errors name the field).
    pub fn to_spec(&self) -> Result<CronJobSpec, SpecError> {
        let schedule: CronSchedule = self.schedule.parse()?;
        let path: CronPath = self.path.parse()?;
        let method: CronMethod = match &self.method {
            Some(m) => m.to_ascii_uppercase().parse()?,
            None => CronMethod::default(),
        };
        let timezone: CronTimezone = match &self.timezone {
            Some(tz) => tz.parse()?,
            None => CronTimezone::utc(),
        };
        let timeout = match &self.timeout {
            Some(t) => parse_cron_timeout(t)?,
            None => CRON_TIMEOUT_DEFAULT,
        };
        let concurrency: CronConcurrency = match &self.concurrency {
            Some(c) => c.parse()?,
            None => CronConcurrency::default(),
        };
        let retries = match self.retries {
            Some(r) => check_cron_retries(r)?,
            None => 0,
        };
        let id = match &self.job {
            Some(id) => id.parse()?,
            None => CronJobId::from_path(&path, method),
        };
        Ok(CronJobSpec {
            id,
            schedule,
            path,
            method,
            timezone,
            timeout,
            concurrency,
            retries,
        })
    }
}

/// A cron job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CronJob {
    pub service: String,
    pub id: String,
    pub schedule: String,
    pub path: String,
    pub method: CronMethod,
    pub timezone: String,
    pub timeout_ms: u64,
    pub concurrency: CronConcurrency,
    pub retries: u32,
    pub paused: bool,
    /// Where it was defined: `api` (and the CLI), or `hoist.toml` (replaced by each deploy).
    pub source: CronSource,
    pub created_at: i64,
    /// The latest scheduled time dealt with (run, skipped or missed).
    pub last_scheduled_at: Option<i64>,
    /// When it runs next (none while paused).
    pub next_run_at: Option<i64>,
}

/// One attempt of a run, or a run skipped or missed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CronRun {
    pub id: i64,
    pub job: String,
    /// The same for every attempt of one run (`X-Hoist-Execution-Id`).
    pub execution_id: String,
    pub scheduled_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub status: CronRunStatus,
    pub http_status: Option<u16>,
    pub instance: Option<String>,
    /// 1 for the first attempt; 0 for a run that was skipped or missed.
    pub attempt: u32,
    /// Why it failed, was skipped or missed.
    pub detail: Option<String>,
}

/// `GET /v1/services/{name}/cron/runs` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CronRunsQuery {
    /// Only this job's runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The most runs, newest first (default 100, at most 10000).
    #[param(minimum = 1, maximum = 10000)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// What `POST …/cron/{job}/run` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CronRunStarted {
    /// The run's execution id; none if it was skipped (`forbid`, a run in flight).
    pub execution_id: Option<String>,
}

#[cfg(feature = "server")]
mod from_store {
    use super::*;

    impl CronJob {
        pub fn from_record(r: hoist_store::CronJobRecord, next_run_at: Option<i64>) -> CronJob {
            CronJob {
                service: r.service.to_string(),
                id: r.spec.id.to_string(),
                schedule: r.spec.schedule.to_string(),
                path: r.spec.path.as_str().to_string(),
                method: r.spec.method,
                timezone: r.spec.timezone.as_str().to_string(),
                timeout_ms: hoist_core::millis(r.spec.timeout),
                concurrency: r.spec.concurrency,
                retries: r.spec.retries,
                paused: r.paused,
                source: r.source,
                created_at: r.created_at,
                last_scheduled_at: r.last_scheduled,
                next_run_at,
            }
        }
    }

    impl From<hoist_store::CronRunRecord> for CronRun {
        fn from(r: hoist_store::CronRunRecord) -> CronRun {
            CronRun {
                id: r.id,
                job: r.job.to_string(),
                execution_id: r.execution,
                scheduled_at: r.scheduled_at,
                started_at: r.started_at,
                finished_at: r.finished_at,
                status: r.status,
                http_status: r.http_status,
                instance: r.instance,
                attempt: r.attempt,
                detail: r.detail,
            }
        }
    }
}
