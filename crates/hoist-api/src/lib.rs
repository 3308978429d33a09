//! The REST API (`/v1`, JSON, bearer-token auth) and its OpenAPI description, generated from
//! the wire types of `hoist-api-types`. Every CLI command but `server` is a client of this API.

mod auth;
mod error;
mod extract;
mod metrics;
mod openapi;
mod routes;
mod serve;
mod state;
mod stream;

use std::sync::Arc;

use axum::Router;
use hoist_control::Platform;

pub use openapi::document as openapi;
pub use serve::serve;

use crate::error::ApiError;
use crate::state::AppState;

pub fn router(platform: Arc<Platform>) -> Router {
    let (authed, open, doc) = openapi::parts();
    let state = Arc::new(AppState {
        platform,
        openapi: doc.to_json().unwrap_or_default().into(),
    });
    authed
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .merge(open)
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .with_state(state)
}
