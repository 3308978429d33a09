//! Cron jobs, their runs (one row per attempt) and each service's sealed cron secret.

use std::time::Duration;

use hoist_core::{
    CronFileJob, CronJobId, CronJobSpec, CronRunStatus, CronSource, ServiceName, millis,
};
use rusqlite::{OptionalExtension, Row, params};

use crate::{Store, StoreError, now_ms};

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronJobRecord {
    pub service: ServiceName,
    pub spec: CronJobSpec,
    pub paused: bool,
    pub source: CronSource,
    pub created_at: i64,
    /// The latest scheduled time dealt with (ms), if any.
    pub last_scheduled: Option<i64>,
}

/// One attempt of a run (or a run skipped or missed), as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronRunRecord {
    pub id: i64,
    pub service: ServiceName,
    pub job: CronJobId,
    /// The same for every attempt of one run (`X-Hoist-Execution-Id`).
    pub execution: String,
    pub scheduled_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub status: CronRunStatus,
    pub http_status: Option<u16>,
    pub instance: Option<String>,
    pub attempt: u32,
    /// Why it failed, was skipped or missed.
    pub detail: Option<String>,
}

/// A run row to add.
#[derive(Debug, Clone)]
pub struct NewCronRun<'a> {
    pub service: &'a ServiceName,
    pub job: &'a CronJobId,
    pub execution: &'a str,
    pub scheduled_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub status: CronRunStatus,
    pub attempt: u32,
    pub detail: Option<&'a str>,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub struct CronRunEnd<'a> {
    pub status: CronRunStatus,
    pub http_status: Option<u16>,
    pub instance: Option<&'a str>,
    pub finished_at: i64,
    pub detail: Option<&'a str>,
}

const JOB_COLUMNS: &str = "service, id, schedule, path, method, timezone, timeout_ms, concurrency, \
     retries, paused, source, created_at, last_scheduled";

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>()
        .map_err(|e| corrupt(format!("{what} '{s}': {e}")))
}

type JobRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    String,
    i64,
    bool,
    String,
    i64,
    Option<i64>,
);

fn job_row(r: &Row<'_>) -> rusqlite::Result<JobRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
    ))
}

fn job_record(row: JobRow) -> Result<CronJobRecord, StoreError> {
    let (service, id, schedule, path, method, tz, timeout_ms, conc, retries, paused, src, at, last) =
        row;
    Ok(CronJobRecord {
        service: parse(&service, "service name")?,
        spec: CronJobSpec {
            id: parse(&id, "cron job id")?,
            schedule: parse(&schedule, "cron schedule")?,
            path: parse(&path, "cron path")?,
            method: parse(&method, "cron method")?,
            timezone: parse(&tz, "cron timezone")?,
            timeout: Duration::from_millis(u64::try_from(timeout_ms).map_err(corrupt)?),
            concurrency: parse(&conc, "cron concurrency")?,
            retries: u32::try_from(retries).map_err(corrupt)?,
        },
        paused,
        source: parse(&src, "cron source")?,
        created_at: at,
        last_scheduled: last,
    })
}

type RunRow = (
    i64,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    String,
    Option<i64>,
    Option<String>,
    i64,
    Option<String>,
);

fn run_record(row: RunRow) -> Result<CronRunRecord, StoreError> {
    let (id, service, job, execution, scheduled, started, finished, status, http, inst, att, det) =
        row;
    Ok(CronRunRecord {
        id,
        service: parse(&service, "service name")?,
        job: parse(&job, "cron job id")?,
        execution,
        scheduled_at: scheduled,
        started_at: started,
        finished_at: finished,
        status: parse(&status, "cron run status")?,
        http_status: http.and_then(|s| u16::try_from(s).ok()),
        instance: inst,
        attempt: u32::try_from(att).map_err(corrupt)?,
        detail: det,
    })
}

impl Store {
    /// Adds a job; `false` if the service has a job of that id already.
    pub fn insert_cron_job(
        &self,
        service: &ServiceName,
        spec: &CronJobSpec,
        source: CronSource,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let n = self.conn().execute(
            "INSERT INTO cron_jobs (service, id, schedule, path, method, timezone, timeout_ms,
                 concurrency, retries, paused, source, created_at, updated_at, last_scheduled)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, ?11, ?11, ?11)
             ON CONFLICT (service, id) DO NOTHING",
            params![
                service.as_str(),
                spec.id.as_str(),
                spec.schedule.as_str(),
                spec.path.as_str(),
                spec.method.as_str(),
                spec.timezone.as_str(),
                millis(spec.timeout) as i64,
                spec.concurrency.as_str(),
                spec.retries,
                source.as_str(),
                now
            ],
        )?;
        Ok(n == 1)
    }

    /// Makes `jobs` the service's hoist.toml jobs: those no longer listed go, listed ones are
    /// added or updated (keeping whether they are paused and what they ran last). A job the
    /// API added under the same id becomes the file's. Returns the ids removed.
    pub fn replace_file_cron_jobs(
        &self,
        service: &ServiceName,
        jobs: &[CronFileJob],
    ) -> Result<Vec<CronJobId>, StoreError> {
        let now = now_ms();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let existing: Vec<String> = {
            let mut stmt =
                tx.prepare("SELECT id FROM cron_jobs WHERE service = ?1 AND source = ?2")?;
            let rows = stmt.query_map(
                params![service.as_str(), CronSource::HoistToml.as_str()],
                |r| r.get(0),
            )?;
            rows.collect::<Result<_, _>>()?
        };
        let mut removed = Vec::new();
        for id in existing {
            if !jobs.iter().any(|j| j.id.as_str() == id) {
                tx.execute(
                    "DELETE FROM cron_jobs WHERE service = ?1 AND id = ?2",
                    params![service.as_str(), id],
                )?;
                removed.push(parse(&id, "cron job id")?);
            }
        }
        for j in jobs {
            tx.execute(
                "INSERT INTO cron_jobs (service, id, schedule, path, method, timezone, timeout_ms,
                     concurrency, retries, paused, source, created_at, updated_at, last_scheduled)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, ?11, ?11, ?11)
                 ON CONFLICT (service, id) DO UPDATE SET schedule = ?3, path = ?4, method = ?5,
                     timezone = ?6, timeout_ms = ?7, concurrency = ?8, retries = ?9,
                     source = ?10, updated_at = ?11",
                params![
                    service.as_str(),
                    j.id.as_str(),
                    j.schedule.as_str(),
                    j.path.as_str(),
                    j.method.as_str(),
                    j.timezone.as_str(),
                    j.timeout_ms as i64,
                    j.concurrency.as_str(),
                    j.retries,
                    CronSource::HoistToml.as_str(),
                    now
                ],
            )?;
        }
        tx.commit()?;
        Ok(removed)
    }

    /// Every job of `service`, or of all services, ordered by service and id.
    pub fn list_cron_jobs(
        &self,
        service: Option<&ServiceName>,
    ) -> Result<Vec<CronJobRecord>, StoreError> {
        let conn = self.conn();
        let rows: Vec<JobRow> = match service {
            Some(s) => {
                let mut stmt = conn.prepare(&format!(
                    "SELECT {JOB_COLUMNS} FROM cron_jobs WHERE service = ?1 ORDER BY id"
                ))?;
                let rows = stmt.query_map(params![s.as_str()], job_row)?;
                rows.collect::<Result<_, _>>()?
            }
            None => {
                let mut stmt = conn.prepare(&format!(
                    "SELECT {JOB_COLUMNS} FROM cron_jobs ORDER BY service, id"
                ))?;
                let rows = stmt.query_map([], job_row)?;
                rows.collect::<Result<_, _>>()?
            }
        };
        drop(conn);
        rows.into_iter().map(job_record).collect()
    }

    pub fn get_cron_job(
        &self,
        service: &ServiceName,
        id: &CronJobId,
    ) -> Result<Option<CronJobRecord>, StoreError> {
        let row = self
            .conn()
            .query_row(
                &format!("SELECT {JOB_COLUMNS} FROM cron_jobs WHERE service = ?1 AND id = ?2"),
                params![service.as_str(), id.as_str()],
                job_row,
            )
            .optional()?;
        row.map(job_record).transpose()
    }

    /// Removes a job (its runs stay until retention); `false` if there was none.
    pub fn delete_cron_job(
        &self,
        service: &ServiceName,
        id: &CronJobId,
    ) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "DELETE FROM cron_jobs WHERE service = ?1 AND id = ?2",
            params![service.as_str(), id.as_str()],
        )?;
        Ok(n == 1)
    }

    /// Pauses or resumes a job; `false` if there is none. Resuming moves `last_scheduled` to
    /// now: the times that passed while paused are not missed runs.
    pub fn set_cron_paused(
        &self,
        service: &ServiceName,
        id: &CronJobId,
        paused: bool,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let n = self.conn().execute(
            "UPDATE cron_jobs SET paused = ?3, updated_at = ?4,
                 last_scheduled = CASE WHEN ?3 THEN last_scheduled ELSE ?4 END
             WHERE service = ?1 AND id = ?2",
            params![service.as_str(), id.as_str(), paused, now],
        )?;
        Ok(n == 1)
    }

    /// Records that the job's runs up to `scheduled_at` have been dealt with.
    pub fn set_cron_last_scheduled(
        &self,
        service: &ServiceName,
        id: &CronJobId,
        scheduled_at: i64,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE cron_jobs SET last_scheduled = max(coalesce(last_scheduled, 0), ?3)
             WHERE service = ?1 AND id = ?2",
            params![service.as_str(), id.as_str(), scheduled_at],
        )?;
        Ok(())
    }

    /// Adds a run row; its id.
    pub fn insert_cron_run(&self, run: &NewCronRun<'_>) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO cron_runs (service, job, execution, scheduled_at, started_at,
                 finished_at, status, attempt, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                run.service.as_str(),
                run.job.as_str(),
                run.execution,
                run.scheduled_at,
                run.started_at,
                run.finished_at,
                run.status.as_str(),
                run.attempt,
                run.detail
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Records how a running attempt ended.
    pub fn finish_cron_run(&self, id: i64, end: &CronRunEnd<'_>) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE cron_runs SET status = ?2, http_status = ?3, instance = ?4, finished_at = ?5,
                 detail = ?6
             WHERE id = ?1",
            params![
                id,
                end.status.as_str(),
                end.http_status,
                end.instance,
                end.finished_at,
                end.detail
            ],
        )?;
        Ok(())
    }

    /// The newest `limit` runs of a service (or one job), newest first.
    pub fn list_cron_runs(
        &self,
        service: &ServiceName,
        job: Option<&CronJobId>,
        limit: usize,
    ) -> Result<Vec<CronRunRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, service, job, execution, scheduled_at, started_at, finished_at, status,
                    http_status, instance, attempt, detail
             FROM cron_runs WHERE service = ?1 AND (?2 IS NULL OR job = ?2)
             ORDER BY id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![service.as_str(), job.map(|j| j.as_str()), limit as i64],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                    r.get(11)?,
                ))
            },
        )?;
        let rows: Vec<RunRow> = rows.collect::<Result<_, _>>()?;
        drop(stmt);
        drop(conn);
        rows.into_iter().map(run_record).collect()
    }

    /// Runs left `running` by a server that stopped without finishing them: failed.
    pub fn fail_running_cron_runs(&self, detail: &str) -> Result<usize, StoreError> {
        Ok(self.conn().execute(
            "UPDATE cron_runs SET status = ?1, finished_at = ?2, detail = ?3 WHERE status = ?4",
            params![
                CronRunStatus::Failed.as_str(),
                now_ms(),
                detail,
                CronRunStatus::Running.as_str()
            ],
        )?)
    }

    /// Drops runs scheduled before `cutoff_ms` (retention, like logs).
    pub fn prune_cron_runs_before(&self, cutoff_ms: i64) -> Result<usize, StoreError> {
        Ok(self.conn().execute(
            "DELETE FROM cron_runs WHERE scheduled_at < ?1",
            params![cutoff_ms],
        )?)
    }

    /// The service's sealed cron secret, if it has one.
    pub fn cron_secret(&self, service: &ServiceName) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT cron_secret_sealed FROM services WHERE name = ?1",
                params![service.as_str()],
                |r| r.get::<_, Option<Vec<u8>>>(0),
            )
            .optional()?
            .flatten())
    }

    /// Stores the sealed secret if the service has none yet; `false` if it had one (or is
    /// gone), so two makers agree on the first.
    pub fn set_cron_secret(
        &self,
        service: &ServiceName,
        sealed: &[u8],
    ) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE services SET cron_secret_sealed = ?2
             WHERE name = ?1 AND cron_secret_sealed IS NULL",
            params![service.as_str(), sealed],
        )?;
        Ok(n == 1)
    }
}

#[cfg(test)]
#[path = "cron_tests.rs"]
mod tests;
