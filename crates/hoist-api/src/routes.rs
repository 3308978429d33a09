use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use hoist_control::{ControlError, DeployRequest, EnvChange, Platform, ScalingRequest};
use hoist_core::{DeploymentId, ServiceName};
use hoist_store::LogFilter;
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
    pub(crate) fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
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
        .route("/deployments", post(create_deployment))
        .route("/deployments/{id}", get(get_deployment))
        .route("/deployments/{id}/events", get(deployment_events))
        .route("/runtimes", get(list_runtimes))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
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
    let Json(req) = body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
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
    let Json(change) = body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
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
    let Json(req) = body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
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
) -> ApiResult<Response> {
    let id = deployment_id(&id)?;
    if s.platform.store().get_deployment(&id)?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("deployment '{id}' not found"),
        ));
    }
    Ok(stream::deployment_events(s.platform.clone(), id))
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    #[serde(default)]
    follow: bool,
    #[serde(default)]
    build: bool,
    deployment: Option<String>,
    tail: Option<usize>,
}

async fn service_logs(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Response> {
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
    let filter = LogFilter {
        deployment: deployment.map(|d| d.to_string()),
        build_only: q.build,
        after_id: None,
        tail: Some(q.tail.unwrap_or(if q.follow { 100 } else { 1000 })),
    };
    Ok(stream::service_logs(
        s.platform.clone(),
        name.to_string(),
        filter,
        q.follow,
    ))
}

async fn list_runtimes(State(s): State<Arc<AppState>>) -> Json<Vec<hoist_build::RuntimeInfo>> {
    Json(s.platform.runtimes().list())
}
