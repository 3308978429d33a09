use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use hoist_control::{ControlError, DeployRequest, EnvChange, Platform, ScalingRequest};
use hoist_core::{DeploymentId, ServiceName};
use hoist_store::{LogFilter, LogStream};
use serde::{Deserialize, Serialize};

use crate::{auth, stream};

pub struct AppState {
    pub(crate) platform: Arc<Platform>,
}

/// Every error the API returns: `{"error": "..."}` with a fitting status.
#[derive(Debug, Serialize)]
pub(crate) struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    error: String,
}

impl ApiError {
    /// Each value an error quotes is cut where it is quoted ([`hoist_core::echo`]); this cut
    /// of the whole message is the last guard, so that no error body grows with its input.
    pub(crate) fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: hoist_core::echo_within(&hoist_core::echo_words(&error.into()), MAX_ERROR_CHARS)
                .into_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(&self)).into_response()
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> ApiError {
        let status = match &e {
            ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
            ControlError::ServiceNotFound(_) | ControlError::DeploymentNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            ControlError::Rollback(_) => StatusCode::CONFLICT,
            ControlError::NotApplied(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<hoist_store::StoreError> for ApiError {
    fn from(e: hoist_store::StoreError) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The longest error message the API returns: room for a rule and a few quoted values.
const MAX_ERROR_CHARS: usize = 800;

/// A request body that did not parse: serde's message quotes the offending field or value,
/// which `ApiError::new` cuts like any echoed input.
fn bad_body(e: axum::extract::rejection::JsonRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, e.body_text())
}

fn service_name(name: &str) -> ApiResult<ServiceName> {
    ServiceName::from_str(name).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))
}

fn deployment_id(id: &str) -> ApiResult<DeploymentId> {
    DeploymentId::from_str(id).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))
}

pub fn router(platform: Arc<Platform>) -> Router {
    let state = Arc::new(AppState { platform });
    let v1 = Router::new()
        .route("/services", get(list_services))
        .route("/services/{name}", get(get_service).delete(delete_service))
        .route("/services/{name}/logs", get(service_logs))
        .route("/services/{name}/scale", post(scale_service))
        .route("/services/{name}/stop", post(stop_service))
        .route("/services/{name}/usage", get(service_usage))
        .route(
            "/services/{name}/env",
            get(service_env).patch(change_service_env),
        )
        .route("/services/{name}/rollback", post(rollback_service))
        .route("/services/{name}/events", get(service_events))
        .route("/services/{name}/metrics", get(service_series))
        .route("/deployments", post(create_deployment))
        .route("/deployments/{id}", get(get_deployment))
        .route("/deployments/{id}/events", get(deployment_events))
        .route("/runtimes", get(list_runtimes))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    // Scrapers send the same bearer token (Prometheus: `authorization: credentials_file`).
    let metrics =
        Router::new()
            .route("/metrics", get(metrics))
            .route_layer(middleware::from_fn_with_state(
                state.clone(),
                auth::require_token,
            ));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(metrics)
        .route("/openapi.json", get(openapi))
        .nest("/v1", v1)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(state)
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("../openapi.json"),
    )
        .into_response()
}

async fn list_services(State(s): State<Arc<AppState>>) -> ApiResult<Response> {
    Ok(Json(s.platform.list()?).into_response())
}

async fn get_service(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let name = service_name(&name)?;
    Ok(Json(s.platform.service_view(&name)?).into_response())
}

async fn delete_service(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let name = service_name(&name)?;
    s.platform.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn scale_service(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<Json<ScalingRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Response> {
    let name = service_name(&name)?;
    let Json(req) = body.map_err(bad_body)?;
    let layer = req.to_layer().map_err(ControlError::from)?;
    Ok(Json(s.platform.scale(&name, &layer)?).into_response())
}

async fn stop_service(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let name = service_name(&name)?;
    let stopped = s.platform.stop_service(&name)?;
    Ok(Json(serde_json::json!({ "stopped": stopped })).into_response())
}

#[derive(Debug, Deserialize)]
struct EnvQuery {
    #[serde(default)]
    reveal: bool,
}

/// Names only unless `reveal` is asked for: listings must not spill secrets onto screens.
async fn service_env(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<EnvQuery>,
) -> ApiResult<Response> {
    let name = service_name(&name)?;
    let env = s.platform.env(&name)?;
    let names: Vec<&str> = env.iter().map(|(k, _)| k).collect();
    Ok(if q.reveal {
        Json(serde_json::json!({ "names": names, "values": env.as_map() })).into_response()
    } else {
        Json(serde_json::json!({ "names": names })).into_response()
    })
}

async fn change_service_env(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Result<Json<EnvChange>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Response> {
    let name = service_name(&name)?;
    let Json(change) = body.map_err(bad_body)?;
    Ok(Json(s.platform.change_env(&name, change).await?).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    #[serde(default)]
    deployment: Option<String>,
}

async fn rollback_service(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Option<Json<RollbackRequest>>,
) -> ApiResult<Response> {
    let name = service_name(&name)?;
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let target = req.deployment.as_deref().map(deployment_id).transpose()?;
    Ok(Json(s.platform.rollback(&name, target).await?).into_response())
}

#[derive(Debug, Deserialize)]
struct UsageQuery {
    days: Option<u32>,
}

async fn service_usage(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<UsageQuery>,
) -> ApiResult<Response> {
    let name = service_name(&name)?;
    if s.platform.store().get_service(&name)?.is_none() {
        return Err(ControlError::ServiceNotFound(name.to_string()).into());
    }
    let days = q.days.unwrap_or(30).clamp(1, 366);
    Ok(Json(s.platform.store().usage(&name, days)?).into_response())
}

async fn create_deployment(
    State(s): State<Arc<AppState>>,
    body: Result<Json<DeployRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Response> {
    let Json(req) = body.map_err(bad_body)?;
    let record = s.platform.deploy(req).await?;
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

async fn get_deployment(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = deployment_id(&id)?;
    let d = s.platform.store().get_deployment(&id)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("deployment '{id}' not found"),
        )
    })?;
    Ok(Json(d).into_response())
}

async fn deployment_events(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<stream::StreamQuery>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    let bad = |e: String| ApiError::new(StatusCode::BAD_REQUEST, e);
    let id = deployment_id(&id)?;
    let format = stream::Format::negotiate(q.format.as_deref(), &headers).map_err(bad)?;
    let resume = stream::Resume::from_headers(&headers).map_err(bad)?;
    if s.platform.store().get_deployment(&id)?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("deployment '{id}' not found"),
        ));
    }
    Ok(stream::deployment_events(
        s.platform.clone(),
        id,
        format,
        resume,
    ))
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    #[serde(default)]
    follow: bool,
    #[serde(default)]
    build: bool,
    deployment: Option<String>,
    instance: Option<String>,
    /// Comma-separated: stdout, stderr, access, build, system.
    stream: Option<String>,
    /// Only lines from this long ago on, e.g. `10m`, `2h`, `7d`.
    since: Option<String>,
    grep: Option<String>,
    tail: Option<usize>,
    /// `sse` for Server-Sent Events (also chosen by `Accept: text/event-stream`).
    format: Option<String>,
}

async fn service_logs(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    let bad = |e: String| ApiError::new(StatusCode::BAD_REQUEST, e);
    let name = service_name(&name)?;
    if s.platform.store().get_service(&name)?.is_none() {
        return Err(ControlError::ServiceNotFound(name.to_string()).into());
    }
    let mut deployment = q.deployment.map(|d| deployment_id(&d)).transpose()?;
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
                .map_err(|e| bad(e.to_string()))
        })
        .transpose()?;
    let mut streams = Vec::new();
    for part in q.stream.iter().flat_map(|s| s.split(',')) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        streams.push(LogStream::parse(part).ok_or_else(|| {
            bad(format!(
                "unknown log stream '{}': expected stdout, stderr, access, build or system",
                hoist_core::echo(part)
            ))
        })?);
    }
    let since_ms = q
        .since
        .map(|d| {
            hoist_core::parse_duration(&d)
                // At most 100 years (parse_duration's bound): the subtraction cannot wrap.
                .map(|d| hoist_store::now_ms().saturating_sub(hoist_core::millis(d) as i64))
                .map_err(|e| bad(e.to_string()))
        })
        .transpose()?;
    let grep = q.grep.filter(|g| !g.is_empty());
    let format = stream::Format::negotiate(q.format.as_deref(), &headers).map_err(bad)?;
    let resume = stream::Resume::from_headers(&headers).map_err(bad)?;
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
    Ok(stream::service_logs(
        s.platform.clone(),
        name.to_string(),
        filter,
        q.follow,
        format,
        resume,
    ))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    limit: Option<usize>,
}

async fn service_events(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Response> {
    let name = service_name(&name)?;
    if s.platform.store().get_service(&name)?.is_none() {
        return Err(ControlError::ServiceNotFound(name.to_string()).into());
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    Ok(Json(s.platform.store().events(&name, limit)?).into_response())
}

#[derive(Debug, Deserialize)]
struct SeriesQuery {
    /// How far back, e.g. `60m` (default) or `24h` (the most kept).
    since: Option<String>,
}

async fn service_series(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<SeriesQuery>,
) -> ApiResult<Response> {
    let name = service_name(&name)?;
    if s.platform.store().get_service(&name)?.is_none() {
        return Err(ControlError::ServiceNotFound(name.to_string()).into());
    }
    let back = match q.since.as_deref() {
        Some(d) => hoist_core::parse_duration(d)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?,
        None => std::time::Duration::from_secs(3600),
    }
    .min(std::time::Duration::from_secs(24 * 3600));
    let since = hoist_store::now_ms() - hoist_core::millis(back) as i64;
    Ok(Json(s.platform.store().minutes(&name, since)?).into_response())
}

async fn metrics(State(s): State<Arc<AppState>>) -> ApiResult<Response> {
    let text = s
        .platform
        .prometheus_text()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn list_runtimes(State(s): State<Arc<AppState>>) -> Json<Vec<hoist_build::RuntimeInfo>> {
    Json(s.platform.runtimes().list())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
