//! The REST API (`/v1`, JSON, bearer-token or session-cookie auth) and its OpenAPI description, generated from
//! the wire types of `hoist-api-types`. Every CLI command but `server` is a client of this API.

mod auth;
mod cron;
mod error;
mod extract;
mod headers;
mod hooks;
mod metrics;
mod openapi;
mod permissions;
mod routes;
mod serve;
mod session;
mod state;
mod stream;
mod tokens;
mod uploads;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::IntoResponse;
use hoist_control::Platform;

pub use hoist_dashboard::is_built as dashboard_built;
pub use openapi::document as openapi;
pub use serve::serve;
pub use uploads::DEFAULT_MAX_UPLOAD;

use crate::error::ApiError;
use crate::state::AppState;

/// How the server runs the API.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// The admin token's file, named by the sign-in error.
    pub admin_token_file: std::path::PathBuf,
    /// Serve the web dashboard (`hoist-dashboard`) at every GET or HEAD path that is not the
    /// API's; off (`hoist server --no-dashboard`), those get the API's JSON `404`.
    pub dashboard: bool,
    /// The apps' domain, for `GET /v1/server`.
    pub domain: String,
    /// The largest upload taken (`POST /v1/services/{name}/uploads`), in bytes.
    pub max_upload: u64,
    /// The API's address as the git hosts reach it (`hoist server --public-api-url`): the
    /// base of the webhook URLs `hoist hooks` prints.
    pub public_url: String,
}

pub fn router(platform: Arc<Platform>, options: ApiOptions) -> Router {
    let (authed, open, doc) = openapi::parts();
    let admin_token_file = options.admin_token_file.clone();
    let mut info = hoist_api_types::ServerInfo::new(env!("CARGO_PKG_VERSION"), &options.domain);
    info.max_upload_bytes = Some(options.max_upload);
    let state = Arc::new(AppState {
        platform,
        openapi: doc.to_json().unwrap_or_default().into(),
        admin_token_file,
        info,
        max_upload: options.max_upload,
        public_url: options.public_url.clone(),
    });
    authed
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ))
        .merge(open)
        .fallback(
            move |method: Method, uri: Uri, headers: HeaderMap| async move {
                if options.dashboard
                    && (method == Method::GET || method == Method::HEAD)
                    && !headers::is_api_path(uri.path())
                {
                    hoist_dashboard::respond(uri.path(), &headers)
                } else {
                    ApiError::not_found("no such endpoint").into_response()
                }
            },
        )
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "this endpoint does not take that method (see /openapi.json)",
            )
        })
        .with_state(state)
        .layer(axum::middleware::map_response(headers::security_headers))
}
