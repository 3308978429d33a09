//! The REST API (`/v1`, JSON, bearer-token or session-cookie auth) and its OpenAPI description, generated from
//! the wire types of `hoist-api-types`. Every CLI command but `server` is a client of this API.

mod auth;
mod error;
mod extract;
mod metrics;
mod openapi;
mod routes;
mod serve;
mod session;
mod state;
mod stream;

use std::sync::Arc;

use axum::Router;
use hoist_control::Platform;

pub use openapi::document as openapi;
pub use serve::serve;

use crate::error::ApiError;
use crate::state::AppState;

/// How the server runs the API.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// The admin token's file, named by the sign-in error.
    pub admin_token_file: std::path::PathBuf,
}

pub fn router(platform: Arc<Platform>, options: ApiOptions) -> Router {
    let (authed, open, doc) = openapi::parts();
    let state = Arc::new(AppState {
        platform,
        openapi: doc.to_json().unwrap_or_default().into(),
        admin_token_file: options.admin_token_file,
    });
    authed
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ))
        .merge(open)
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "this endpoint does not take that method (see /openapi.json)",
            )
        })
        .with_state(state)
}
