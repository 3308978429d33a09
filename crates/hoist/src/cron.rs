//! `hoist cron`: a service's cron jobs (add, ls, rm, run, runs, pause, resume).

use clap::{Args, Subcommand};
use hoist_api_types::{CronJob, CronJobRequest, CronRun, CronRunStarted, CronRunsQuery};
use reqwest::Method;

use crate::JsonFlag;
use crate::api::Api;
use crate::out::{self, outln};

#[derive(Subcommand)]
pub enum CronCommand {
    /// Add a job: a request to PATH on SCHEDULE (five cron fields, or six with seconds first).
    Add(AddArgs),
    /// List a service's jobs, with when each runs next.
    Ls {
        name: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Remove a job (its history stays until retention).
    Rm { name: String, job: String },
    /// Run a job now, once.
    Run {
        name: String,
        job: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Run history, newest first: one line per attempt, and the runs skipped or missed.
    Runs {
        name: String,
        job: Option<String>,
        /// The most lines (default 100).
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Pause a job until `hoist cron resume`.
    Pause {
        name: String,
        job: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Resume a paused job.
    Resume {
        name: String,
        job: String,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Args)]
pub struct AddArgs {
    name: String,
    /// e.g. '*/5 * * * *' (every 5 minutes) or '*/10 * * * * *' (every 10 seconds).
    #[arg(long)]
    schedule: String,
    /// The path requested, e.g. /tasks/cleanup.
    #[arg(long)]
    path: String,
    /// GET (default), POST, PUT, PATCH or DELETE.
    #[arg(long)]
    method: Option<String>,
    /// IANA time zone the schedule is read in (default UTC), e.g. Europe/Berlin.
    #[arg(long)]
    timezone: Option<String>,
    /// How long one attempt may take (default 3m; 1s to 15m).
    #[arg(long)]
    timeout: Option<String>,
    /// forbid (default: skip a run while the previous is in flight), allow, or replace.
    #[arg(long)]
    concurrency: Option<String>,
    /// Retries of a failed run (5xx, timeout, no answer), with exponential back-off.
    #[arg(long)]
    retries: Option<i64>,
    /// The job's id (default: from the path, /tasks/cleanup → tasks-cleanup).
    #[arg(long)]
    job: Option<String>,
    #[command(flatten)]
    out: JsonFlag,
}

fn jobs_path(name: &str) -> String {
    format!("/v1/services/{name}/cron")
}

pub async fn cron(cmd: CronCommand) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    match cmd {
        CronCommand::Add(a) => {
            let body = CronJobRequest {
                schedule: a.schedule,
                path: a.path,
                method: a.method,
                timezone: a.timezone,
                timeout: a.timeout,
                concurrency: a.concurrency,
                retries: a.retries,
                job: a.job,
            };
            let job: CronJob = api
                .call(api.req(Method::POST, &jobs_path(&a.name)).json(&body))
                .await?;
            if a.out.json {
                return out::json(&job);
            }
            outln!(
                "{}: added cron job {} ({} {} on '{}', {}){}",
                a.name,
                job.id,
                job.method,
                job.path,
                job.schedule,
                job.timezone,
                next(&job)
            )
        }
        CronCommand::Ls { name, out } => {
            let jobs: Vec<CronJob> = api.get(&jobs_path(&name)).await?;
            if out.json {
                return out::json(&jobs);
            }
            if jobs.is_empty() {
                return outln!("{name} has no cron jobs");
            }
            let mut t = out::table(
                &[
                    "JOB",
                    "SCHEDULE",
                    "TZ",
                    "METHOD",
                    "PATH",
                    "CONCURRENCY",
                    "RETRIES",
                    "TIMEOUT",
                    "SOURCE",
                    "NEXT",
                ],
                &[6],
            );
            for j in &jobs {
                t.add_row(vec![
                    j.id.clone(),
                    j.schedule.clone(),
                    j.timezone.clone(),
                    j.method.to_string(),
                    j.path.clone(),
                    j.concurrency.to_string(),
                    j.retries.to_string(),
                    out::duration(j.timeout_ms),
                    j.source.to_string(),
                    if j.paused {
                        "paused".to_string()
                    } else {
                        j.next_run_at.map_or("-".into(), out::timestamp)
                    },
                ]);
            }
            out::print_table(&t)
        }
        CronCommand::Rm { name, job } => {
            api.send(api.req(Method::DELETE, &format!("{}/{job}", jobs_path(&name))))
                .await?;
            outln!("{name}: removed cron job {job}")
        }
        CronCommand::Run { name, job, out } => {
            let started: CronRunStarted = api
                .call(api.req(Method::POST, &format!("{}/{job}/run", jobs_path(&name))))
                .await?;
            if out.json {
                return out::json(&started);
            }
            match started.execution_id {
                Some(x) => outln!(
                    "{name}: cron job {job} started (execution {x}); `hoist cron runs {name} {job}` shows how it went"
                ),
                None => outln!(
                    "{name}: cron job {job} skipped: its previous run is still in flight (concurrency forbid)"
                ),
            }
        }
        CronCommand::Runs {
            name,
            job,
            limit,
            out,
        } => {
            let runs: Vec<CronRun> = api
                .call(
                    api.req(Method::GET, &format!("{}/runs", jobs_path(&name)))
                        .query(&CronRunsQuery { job, limit }),
                )
                .await?;
            if out.json {
                return out::json(&runs);
            }
            if runs.is_empty() {
                return outln!("{name} has no cron runs on record");
            }
            let mut t = out::table(
                &[
                    "SCHEDULED",
                    "JOB",
                    "STATUS",
                    "HTTP",
                    "ATTEMPT",
                    "TOOK",
                    "INSTANCE",
                    "EXECUTION",
                    "DETAIL",
                ],
                &[3, 4, 5],
            );
            for r in &runs {
                let took = match (r.started_at, r.finished_at) {
                    (Some(s), Some(f)) => out::duration(u64::try_from(f - s).unwrap_or(0)),
                    _ => "-".into(),
                };
                t.add_row(vec![
                    out::timestamp(r.scheduled_at),
                    r.job.clone(),
                    r.status.to_string(),
                    r.http_status.map_or("-".into(), |s| s.to_string()),
                    r.attempt.to_string(),
                    took,
                    r.instance.clone().unwrap_or_else(|| "-".into()),
                    r.execution_id.clone(),
                    out::first_line(r.detail.as_deref()).to_string(),
                ]);
            }
            out::print_table(&t)
        }
        CronCommand::Pause { name, job, out } => pause(&api, &name, &job, "pause", out).await,
        CronCommand::Resume { name, job, out } => pause(&api, &name, &job, "resume", out).await,
    }
}

async fn pause(api: &Api, name: &str, job: &str, verb: &str, out: JsonFlag) -> anyhow::Result<()> {
    let j: CronJob = api
        .call(api.req(Method::POST, &format!("{}/{job}/{verb}", jobs_path(name))))
        .await?;
    if out.json {
        return out::json(&j);
    }
    if j.paused {
        outln!("{name}: cron job {job} paused")
    } else {
        outln!("{name}: cron job {job} resumed{}", next(&j))
    }
}

fn next(j: &CronJob) -> String {
    j.next_run_at
        .map(|t| format!("; next run {}", out::timestamp(t)))
        .unwrap_or_default()
}
