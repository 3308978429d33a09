//! The handlers of `/v1`, each described by its `#[utoipa::path]`: the router and the
//! OpenAPI document are built from the same `routes!` list ([`crate::openapi`]), so no route
//! is served undescribed.

use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use hoist_api_types::{
    ApiErrorBody, DeployRequest, Deployment, DeploymentEventsQuery, EnvApplied, EnvChange, EnvList,
    EnvQuery, EventRecord, EventsQuery, LogLine, LogsQuery, MinuteMetrics, RollbackRequest,
    RuntimeInfo, ScalingSettings, SeriesQuery, ServerInfo, ServiceView, StopResult, StreamEvent,
    UsageDay, UsageQuery,
};
use hoist_control::ControlError;
use hoist_core::{DeploymentId, Over, Principal, Scaling, ServiceName, TokenRole};
use hoist_store::LogFilter;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, OptionalJson};
use crate::state::AppState;
use crate::stream;

pub(crate) type St = State<Arc<AppState>>;

pub(crate) fn service_name(name: &str) -> ApiResult<ServiceName> {
    Ok(ServiceName::from_str(name)?)
}

pub(crate) fn deployment_id(id: &str) -> ApiResult<DeploymentId> {
    Ok(DeploymentId::from_str(id)?)
}

/// A query parameter that decoded but breaks a rule: the message names it.
fn bad_param(param: &str, rule: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("invalid query parameter `{param}`: {rule}")).with_field(param)
}

pub(crate) fn in_range<T: PartialOrd + Copy + std::fmt::Display>(
    param: &str,
    value: Option<T>,
    default: T,
    (min, max): (T, T),
) -> ApiResult<T> {
    match value {
        None => Ok(default),
        Some(v) if v >= min && v <= max => Ok(v),
        Some(v) => Err(bad_param(
            param,
            format!("{v} is out of range: must be between {min} and {max}"),
        )),
    }
}

fn ensure_service(s: &AppState, name: &ServiceName) -> ApiResult<()> {
    if s.platform.store().get_service(name)?.is_none() {
        return Err(ControlError::ServiceNotFound(name.to_string()).into());
    }
    Ok(())
}

/// All services, each with its latest deployment and the instances running now. A token
/// for one service sees that one only.
#[utoipa::path(get, path = "/services", operation_id = "listServices", tag = "services",
    responses((status = 200, description = "Every service the token may read", body = Vec<ServiceView>)))]
pub(crate) async fn list_services(
    State(s): St,
    Extension(caller): Extension<Principal>,
) -> ApiResult<Json<Vec<ServiceView>>> {
    let mut list = s.platform.list()?;
    list.retain(|v| caller.sees(&v.service.name));
    Ok(Json(list))
}

fn forbidden(denied: hoist_core::Denied) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, denied.0)
}

/// One service in detail: its deployments, instances, usage counters and recent events.
#[utoipa::path(get, path = "/services/{name}", operation_id = "getService", tag = "services",
    params(("name" = String, Path, description = "The service name")),
    responses((status = 200, description = "The service", body = ServiceView)))]
pub(crate) async fn get_service(
    State(s): St,
    Path(name): Path<String>,
) -> ApiResult<Json<ServiceView>> {
    let name = service_name(&name)?;
    Ok(Json(s.platform.service_view(&name)?))
}

/// Deletes the service: its instances, images, logs and records.
#[utoipa::path(delete, path = "/services/{name}", operation_id = "deleteService", tag = "services",
    params(("name" = String, Path, description = "The service name")),
    responses((status = 204, description = "Deleted")))]
pub(crate) async fn delete_service(
    State(s): St,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let name = service_name(&name)?;
    s.platform.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The service's deployments, newest first.
#[utoipa::path(get, path = "/services/{name}/deployments", operation_id = "listServiceDeployments",
    tag = "deployments",
    params(("name" = String, Path, description = "The service name")),
    responses((status = 200, description = "Newest first", body = Vec<Deployment>)))]
pub(crate) async fn service_deployments(
    State(s): St,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<Deployment>>> {
    let name = service_name(&name)?;
    ensure_service(&s, &name)?;
    let list = s.platform.store().list_deployments(&name)?;
    Ok(Json(list.into_iter().map(Deployment::from).collect()))
}

/// Changes the scaling settings; unset ones keep their values. Answers the settings now in
/// force.
#[utoipa::path(post, path = "/services/{name}/scale", operation_id = "scaleService", tag = "services",
    params(("name" = String, Path, description = "The service name")),
    request_body = ScalingSettings,
    responses((status = 200, description = "The settings in force", body = Scaling)))]
pub(crate) async fn scale_service(
    State(s): St,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<ScalingSettings>,
) -> ApiResult<Json<Scaling>> {
    let name = service_name(&name)?;
    let layer = req.to_layer()?;
    Ok(Json(s.platform.scale(&name, &layer)?))
}

/// Stops the service's running instances (the next request starts one again).
#[utoipa::path(post, path = "/services/{name}/stop", operation_id = "stopService", tag = "services",
    params(("name" = String, Path, description = "The service name")),
    responses((status = 200, description = "How many were stopped", body = StopResult)))]
pub(crate) async fn stop_service(
    State(s): St,
    Path(name): Path<String>,
) -> ApiResult<Json<StopResult>> {
    let name = service_name(&name)?;
    let stopped = s.platform.stop_service(&name)?;
    Ok(Json(StopResult { stopped }))
}

/// The service's environment: names only unless `reveal` is asked for, so that listings do
/// not spill secrets onto screens.
#[utoipa::path(get, path = "/services/{name}/env", operation_id = "getServiceEnv", tag = "env",
    params(("name" = String, Path, description = "The service name"), EnvQuery),
    responses((status = 200, description = "The variables", body = EnvList)))]
pub(crate) async fn service_env(
    State(s): St,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<EnvQuery>,
) -> ApiResult<Json<EnvList>> {
    let name = service_name(&name)?;
    if q.reveal {
        // A deploy token can deploy code that reads the values; a read token must not.
        let action = format!("reveal the variables of service '{name}'");
        caller
            .may(TokenRole::Deploy, Over::Service(&name), &action)
            .map_err(forbidden)?;
    }
    let env = s.platform.env(&name)?;
    Ok(Json(EnvList {
        names: env.iter().map(|(k, _)| k.to_string()).collect(),
        values: q.reveal.then(|| env.as_map().clone()),
    }))
}

/// Sets and unsets variables, then replaces the running instances with ones that have the
/// new environment (no rebuild).
#[utoipa::path(patch, path = "/services/{name}/env", operation_id = "changeServiceEnv", tag = "env",
    params(("name" = String, Path, description = "The service name")),
    request_body = EnvChange,
    responses(
        (status = 200, description = "What the change did", body = EnvApplied),
        (status = 422, description = "Not applied: the new instances did not start", body = ApiErrorBody)))]
pub(crate) async fn change_service_env(
    State(s): St,
    Path(name): Path<String>,
    ApiJson(change): ApiJson<EnvChange>,
) -> ApiResult<Json<EnvApplied>> {
    let name = service_name(&name)?;
    Ok(Json(s.platform.change_env(&name, change).await?))
}

/// Switches the service back to an earlier deployment, from its stored image (no rebuild).
/// The body may be left out: the deployment live before the current one is the target.
#[utoipa::path(post, path = "/services/{name}/rollback", operation_id = "rollbackService",
    tag = "deployments",
    params(("name" = String, Path, description = "The service name")),
    request_body(content = Option<RollbackRequest>, description = "Optional"),
    responses(
        (status = 200, description = "The deployment live again", body = Deployment),
        (status = 409, description = "Nothing to roll back to", body = ApiErrorBody)))]
pub(crate) async fn rollback_service(
    State(s): St,
    Path(name): Path<String>,
    OptionalJson(body): OptionalJson<RollbackRequest>,
) -> ApiResult<Json<Deployment>> {
    let name = service_name(&name)?;
    let target = body.unwrap_or_default().deployment;
    Ok(Json(s.platform.rollback(&name, target).await?.into()))
}

/// Usage per UTC day, oldest first.
#[utoipa::path(get, path = "/services/{name}/usage", operation_id = "serviceUsage", tag = "observe",
    params(("name" = String, Path, description = "The service name"), UsageQuery),
    responses((status = 200, description = "One row per day", body = Vec<UsageDay>)))]
pub(crate) async fn service_usage(
    State(s): St,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<Json<Vec<UsageDay>>> {
    let name = service_name(&name)?;
    let days = in_range("days", q.days, 30, (1, 366))?;
    ensure_service(&s, &name)?;
    let rows = s.platform.store().usage(&name, days)?;
    Ok(Json(rows.into_iter().map(UsageDay::from).collect()))
}

/// The header with which the CLI says it is the CLI: its deploys are recorded as `cli`.
pub(crate) const CLIENT_HEADER: &str = "x-hoist-client";

/// Starts a deployment: answers at once with the queued deployment; its progress is at
/// `/v1/deployments/{id}/events`. It is recorded as triggered by `cli` when the request
/// carries `X-Hoist-Client: cli` (the CLI sends it), by `api` otherwise.
#[utoipa::path(post, path = "/deployments", operation_id = "createDeployment", tag = "deployments",
    params(("X-Hoist-Client" = Option<String>, Header, description = "`cli` from the hoist CLI")),
    request_body = DeployRequest,
    responses((status = 201, description = "Queued", body = Deployment)))]
pub(crate) async fn create_deployment(
    State(s): St,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<DeployRequest>,
) -> ApiResult<(StatusCode, Json<Deployment>)> {
    // The route table checked the role; the service is known only now: the upload's (a name
    // given must be the same, which validation checks), or the name given or derived from the
    // source. A request naming no valid service goes on to fail validation with its own
    // message, and an unknown upload is refused by it too.
    let upload = match &req.upload {
        Some(id) => s.platform.store().get_upload(id)?,
        None => None,
    };
    let target = match &upload {
        Some(u) => Ok(u.service.clone()),
        None => hoist_control::target_service(&req),
    };
    if let Ok(name) = target {
        caller
            .may(
                TokenRole::Deploy,
                Over::Service(&name),
                &format!("deploy service '{name}'"),
            )
            .map_err(forbidden)?;
    }
    // A path on the server's disk is read by the server (as root): only an admin may point
    // it at one. Other tokens deploy git URLs and uploads, which the CLI makes for them.
    let source = req.source.trim();
    if req.upload.is_none() && !source.is_empty() && hoist_core::reads_server_disk(source) {
        caller
            .may(
                TokenRole::Admin,
                Over::Platform,
                "deploy a path on the server's disk (a deploy token deploys git URLs, or the \
                 commit `hoist deploy DIR` uploads for it)",
            )
            .map_err(forbidden)?;
    }
    let trigger = match headers.get(CLIENT_HEADER).map(|v| v.as_bytes()) {
        Some(b"cli") => hoist_core::DeploymentTrigger::Cli,
        _ => hoist_core::DeploymentTrigger::Api,
    };
    let record = s.platform.deploy_by(req, trigger, None).await?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

fn find_deployment(s: &AppState, id: &DeploymentId) -> ApiResult<hoist_store::DeploymentRecord> {
    s.platform
        .store()
        .get_deployment(id)?
        .ok_or_else(|| ApiError::not_found(format!("deployment '{id}' not found")))
}

/// One deployment.
#[utoipa::path(get, path = "/deployments/{id}", operation_id = "getDeployment", tag = "deployments",
    params(("id" = String, Path, description = "The deployment id, e.g. d-0123456789")),
    responses((status = 200, description = "The deployment", body = Deployment)))]
pub(crate) async fn get_deployment(
    State(s): St,
    Path(id): Path<String>,
) -> ApiResult<Json<Deployment>> {
    let id = deployment_id(&id)?;
    Ok(Json(find_deployment(&s, &id)?.into()))
}

/// The build and start of one deployment, one [`StreamEvent`] per line (NDJSON) or per event
/// (SSE, with `format=sse` or `Accept: text/event-stream`): its log lines, then its outcome,
/// after which the stream ends. Every SSE event has an id; a client that reconnects with
/// `Last-Event-ID` gets what followed it, and `204` once the outcome was sent.
#[utoipa::path(get, path = "/deployments/{id}/events", operation_id = "deploymentEvents",
    tag = "deployments",
    params(("id" = String, Path, description = "The deployment id"), DeploymentEventsQuery),
    responses((status = 200, description = "One event per line (NDJSON) or per event (SSE)",
        content((StreamEvent = "application/x-ndjson"), (StreamEvent = "text/event-stream"))),
        (status = 204, description = "A reconnect after the outcome: nothing more will come")))]
pub(crate) async fn deployment_events(
    State(s): St,
    Extension(auth): Extension<Auth>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeploymentEventsQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = deployment_id(&id)?;
    let format = stream::Format::negotiate(q.format, &headers);
    let resume = stream::Resume::from_headers(&headers)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    find_deployment(&s, &id)?;
    Ok(stream::deployment_events(
        s.platform.clone(),
        auth,
        id,
        format,
        resume,
    ))
}

/// The service's logs, oldest first: the backlog, then (with `follow`) new lines as they are
/// stored. NDJSON by default; Server-Sent Events with `format=sse` or `Accept:
/// text/event-stream`.
#[utoipa::path(get, path = "/services/{name}/logs", operation_id = "serviceLogs", tag = "observe",
    params(("name" = String, Path, description = "The service name"), LogsQuery),
    responses((status = 200, description = "One line per line (NDJSON) or per event (SSE)",
        content((LogLine = "application/x-ndjson"), (LogLine = "text/event-stream")))))]
pub(crate) async fn service_logs(
    State(s): St,
    Extension(auth): Extension<Auth>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<LogsQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let name = service_name(&name)?;
    ensure_service(&s, &name)?;
    let mut deployment = q
        .deployment
        .map(|d| deployment_id(&d).map_err(|e| bad_param("deployment", e.error)))
        .transpose()?;
    if q.build && deployment.is_none() {
        // --build means the latest build unless a deployment is named.
        deployment = s
            .platform
            .store()
            .list_deployments(&name)?
            .into_iter()
            .next()
            .map(|d| d.id);
    }
    let instance = q
        .instance
        .map(|i| {
            hoist_core::InstanceId::from_str(&i)
                .map(|i| i.to_string())
                .map_err(|e| bad_param("instance", e))
        })
        .transpose()?;
    let streams = q.stream.map(|l| l.0).unwrap_or_default();
    let since_ms = q
        .since
        .map(|d| {
            hoist_core::parse_duration(&d)
                // At most 100 years (parse_duration's bound): the subtraction cannot wrap.
                .map(|d| hoist_store::now_ms().saturating_sub(hoist_core::millis(d) as i64))
                .map_err(|e| bad_param("since", e))
        })
        .transpose()?;
    let grep = q.grep.filter(|g| !g.is_empty());
    let format = stream::Format::negotiate(q.format, &headers);
    let resume = stream::Resume::from_headers(&headers)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    // A search or a time window asks for everything that matches; a plain view for a tail.
    let default_tail = if grep.is_some() || since_ms.is_some() {
        10_000
    } else if q.follow {
        100
    } else {
        1000
    };
    let filter = LogFilter {
        deployment: deployment.map(|d| d.to_string()),
        build_only: q.build,
        after_id: None,
        since_ms,
        instance,
        streams,
        grep,
        tail: Some(q.tail.unwrap_or(default_tail)),
    };
    let max_rate = match q.max_rate {
        None => None,
        rate => Some(in_range("max_rate", rate, 1, (1, 100_000))?),
    };
    Ok(stream::service_logs(
        s.platform.clone(),
        auth,
        name.to_string(),
        filter,
        stream::Follow {
            follow: q.follow,
            max_rate,
        },
        format,
        resume,
    ))
}

/// The service's recent events (5xx answers, crashes, failed starts), newest first.
#[utoipa::path(get, path = "/services/{name}/events", operation_id = "serviceEvents", tag = "observe",
    params(("name" = String, Path, description = "The service name"), EventsQuery),
    responses((status = 200, description = "Newest first", body = Vec<EventRecord>)))]
pub(crate) async fn service_events(
    State(s): St,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Json<Vec<EventRecord>>> {
    let name = service_name(&name)?;
    let limit = in_range("limit", q.limit, 50, (1, 1000))?;
    ensure_service(&s, &name)?;
    let rows = s.platform.store().events(&name, limit)?;
    Ok(Json(rows.into_iter().map(EventRecord::from).collect()))
}

/// The service's per-minute metrics, oldest first.
#[utoipa::path(get, path = "/services/{name}/metrics", operation_id = "serviceMetrics", tag = "observe",
    params(("name" = String, Path, description = "The service name"), SeriesQuery),
    responses((status = 200, description = "One row per minute with traffic or instances",
        body = Vec<MinuteMetrics>)))]
pub(crate) async fn service_series(
    State(s): St,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<SeriesQuery>,
) -> ApiResult<Json<Vec<MinuteMetrics>>> {
    let name = service_name(&name)?;
    let back = match q.since.as_deref() {
        Some(d) => hoist_core::parse_duration(d).map_err(|e| bad_param("since", e))?,
        None => std::time::Duration::from_secs(3600),
    }
    .min(std::time::Duration::from_secs(24 * 3600));
    ensure_service(&s, &name)?;
    let since = hoist_store::now_ms() - hoist_core::millis(back) as i64;
    let rows = s.platform.store().minutes(&name, since)?;
    Ok(Json(rows.into_iter().map(MinuteMetrics::from).collect()))
}

/// The runtimes Hoist builds apps on, and whether each is built on this host.
#[utoipa::path(get, path = "/runtimes", operation_id = "listRuntimes", tag = "runtimes",
    responses((status = 200, description = "Every runtime", body = Vec<RuntimeInfo>)))]
pub(crate) async fn list_runtimes(State(s): St) -> Json<Vec<RuntimeInfo>> {
    Json(
        s.platform
            .runtimes()
            .list()
            .into_iter()
            .map(Into::into)
            .collect(),
    )
}

/// The server: its version, the apps' domain, the memory sizes a service may have (with the
/// CPU share each buys) and the default scaling settings.
#[utoipa::path(get, path = "/server", operation_id = "getServer", tag = "server",
    responses((status = 200, description = "The server", body = ServerInfo)))]
pub(crate) async fn server_info(
    State(s): St,
    Extension(caller): Extension<Principal>,
) -> Json<ServerInfo> {
    Json(ServerInfo {
        caller_role: Some(caller.role),
        ..s.info.clone()
    })
}

/// Liveness: `ok` once the server answers.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "server", security(()),
    responses((status = 200, description = "The server is up", body = String, content_type = "text/plain")))]
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// What the scraper's `Accept` asks for: OpenMetrics 1.0 when it lists
/// `application/openmetrics-text`, the Prometheus text format 0.0.4 otherwise (the default of
/// every scraper that sends no `Accept`).
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "server",
    responses((status = 200, description = "Platform and per-service metrics",
        content((String = "text/plain; version=0.0.4"),
                (String = "application/openmetrics-text; version=1.0.0")))))]
pub(crate) async fn metrics(State(s): St, headers: HeaderMap) -> ApiResult<Response> {
    let text = s
        .platform
        .prometheus_text()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    Ok(if openmetrics {
        ([(header::CONTENT_TYPE, crate::metrics::OPENMETRICS)], text).into_response()
    } else {
        (
            [(header::CONTENT_TYPE, crate::metrics::PROMETHEUS_TEXT)],
            crate::metrics::to_prometheus_text(&text),
        )
            .into_response()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::MAX_ERROR_CHARS;

    #[test]
    fn an_error_quoting_a_huge_input_stays_short_and_names_the_problem() {
        let huge = "a".repeat(100_000);
        let err = service_name(&huge).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.error.len() < 300, "{} bytes", err.error.len());
        assert!(
            err.error.starts_with("invalid name 'aaaa")
                && err.error.ends_with("must be at most 63 characters"),
            "{}",
            err.error
        );
        let err = deployment_id(&huge).unwrap_err();
        assert!(err.error.len() < 300, "{}", err.error);
        // The last guard: no message is longer than MAX_ERROR_CHARS (and the cut says so).
        let err = ApiError::new(StatusCode::BAD_REQUEST, "x".repeat(50_000));
        assert!(err.error.chars().count() < MAX_ERROR_CHARS + 30);
        assert!(err.error.ends_with("(50000 bytes)"), "{}", err.error);
    }

    #[test]
    fn an_out_of_range_parameter_is_refused_naming_it() {
        let e = in_range("days", Some(0u32), 30, (1, 366)).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            e.error,
            "invalid query parameter `days`: 0 is out of range: must be between 1 and 366"
        );
        assert_eq!(in_range("days", None, 30u32, (1, 366)).unwrap(), 30);
    }
}
