//! `/v1/services/{name}/cron…`: a service's cron jobs and their runs.

use std::str::FromStr;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hoist_api_types::{
    ApiErrorBody, CronJob, CronJobRequest, CronRun, CronRunStarted, CronRunsQuery,
};
use hoist_core::{CronJobId, ServiceName};
use hoist_store::CronJobRecord;

use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::{St, in_range, service_name};

fn job_id(id: &str) -> ApiResult<CronJobId> {
    Ok(CronJobId::from_str(id)?)
}

fn view(s: &crate::state::AppState, name: &ServiceName, r: CronJobRecord) -> CronJob {
    let next = s.platform.cron_next_run(name, &r.spec.id);
    CronJob::from_record(r, next)
}

/// The service's cron jobs, by id.
#[utoipa::path(get, path = "/services/{name}/cron", operation_id = "listCronJobs", tag = "cron",
    params(("name" = String, Path, description = "The service name")),
    responses((status = 200, description = "Its jobs", body = Vec<CronJob>)))]
pub(crate) async fn list_cron_jobs(
    State(s): St,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<CronJob>>> {
    let name = service_name(&name)?;
    let jobs = s.platform.cron_jobs(&name)?;
    Ok(Json(jobs.into_iter().map(|r| view(&s, &name, r)).collect()))
}

/// Adds a cron job. A bad schedule, time zone, path or method is refused naming the field
/// and what was expected; an id in use is `409`.
#[utoipa::path(post, path = "/services/{name}/cron", operation_id = "addCronJob", tag = "cron",
    params(("name" = String, Path, description = "The service name")),
    request_body = CronJobRequest,
    responses(
        (status = 201, description = "Added", body = CronJob),
        (status = 409, description = "The service has a job of that id", body = ApiErrorBody)))]
pub(crate) async fn add_cron_job(
    State(s): St,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<CronJobRequest>,
) -> ApiResult<(StatusCode, Json<CronJob>)> {
    let name = service_name(&name)?;
    let spec = req.to_spec()?;
    let record = s.platform.cron_add(&name, &spec)?;
    Ok((StatusCode::CREATED, Json(view(&s, &name, record))))
}

/// Removes a cron job (its runs stay in the history until retention). A job from hoist.toml
/// comes back with the next deploy that still lists it.
#[utoipa::path(delete, path = "/services/{name}/cron/{job}", operation_id = "removeCronJob",
    tag = "cron",
    params(("name" = String, Path, description = "The service name"),
        ("job" = String, Path, description = "The job id")),
    responses((status = 204, description = "Removed")))]
pub(crate) async fn remove_cron_job(
    State(s): St,
    Path((name, job)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let name = service_name(&name)?;
    s.platform.cron_remove(&name, &job_id(&job)?)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs a job now, once (also a paused one); its concurrency rule applies.
#[utoipa::path(post, path = "/services/{name}/cron/{job}/run", operation_id = "runCronJob",
    tag = "cron",
    params(("name" = String, Path, description = "The service name"),
        ("job" = String, Path, description = "The job id")),
    responses((status = 202, description = "Started (or skipped: no execution id)", body = CronRunStarted)))]
pub(crate) async fn run_cron_job(
    State(s): St,
    Path((name, job)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<CronRunStarted>)> {
    let name = service_name(&name)?;
    let execution_id = s.platform.cron_run_now(&name, &job_id(&job)?)?;
    Ok((StatusCode::ACCEPTED, Json(CronRunStarted { execution_id })))
}

/// Pauses a job: it does not run until resumed (the times in between are not missed runs).
#[utoipa::path(post, path = "/services/{name}/cron/{job}/pause", operation_id = "pauseCronJob",
    tag = "cron",
    params(("name" = String, Path, description = "The service name"),
        ("job" = String, Path, description = "The job id")),
    responses((status = 200, description = "The job", body = CronJob)))]
pub(crate) async fn pause_cron_job(
    State(s): St,
    Path((name, job)): Path<(String, String)>,
) -> ApiResult<Json<CronJob>> {
    let name = service_name(&name)?;
    let record = s.platform.cron_pause(&name, &job_id(&job)?, true)?;
    Ok(Json(view(&s, &name, record)))
}

/// Resumes a paused job from its next scheduled time.
#[utoipa::path(post, path = "/services/{name}/cron/{job}/resume", operation_id = "resumeCronJob",
    tag = "cron",
    params(("name" = String, Path, description = "The service name"),
        ("job" = String, Path, description = "The job id")),
    responses((status = 200, description = "The job", body = CronJob)))]
pub(crate) async fn resume_cron_job(
    State(s): St,
    Path((name, job)): Path<(String, String)>,
) -> ApiResult<Json<CronJob>> {
    let name = service_name(&name)?;
    let record = s.platform.cron_pause(&name, &job_id(&job)?, false)?;
    Ok(Json(view(&s, &name, record)))
}

/// The service's cron runs, newest first: one row per attempt, and the runs skipped or missed.
#[utoipa::path(get, path = "/services/{name}/cron/runs", operation_id = "listCronRuns", tag = "cron",
    params(("name" = String, Path, description = "The service name"), CronRunsQuery),
    responses((status = 200, description = "Newest first", body = Vec<CronRun>)))]
pub(crate) async fn list_cron_runs(
    State(s): St,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<CronRunsQuery>,
) -> ApiResult<Json<Vec<CronRun>>> {
    let name = service_name(&name)?;
    let limit = in_range("limit", q.limit, 100, (1, 10_000))?;
    let job = q.job.as_deref().map(job_id).transpose()?;
    let runs = s.platform.cron_runs(&name, job.as_ref(), limit)?;
    Ok(Json(runs.into_iter().map(CronRun::from).collect()))
}
