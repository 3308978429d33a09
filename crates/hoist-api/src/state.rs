//! What every handler and the auth middleware share. A module of its own so that `auth` and
//! `routes` both depend on it and not on each other.

use std::sync::Arc;

use hoist_control::Platform;

pub struct AppState {
    pub(crate) platform: Arc<Platform>,
    /// The OpenAPI document as served, rendered once.
    pub(crate) openapi: bytes::Bytes,
    /// Where the admin token is, for the sign-in page's error.
    pub(crate) admin_token_file: std::path::PathBuf,
    /// `GET /v1/server`'s answer: it does not change while the server runs.
    pub(crate) info: hoist_api_types::ServerInfo,
    /// The largest upload taken, in bytes (`hoist server --max-upload`).
    pub(crate) max_upload: u64,
    /// The base of the webhook URLs (`hoist server --public-api-url`).
    pub(crate) public_url: String,
}
