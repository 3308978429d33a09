use hoist_core::{ServiceName, TokenRole};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/session`: signs in with an API token (the admin token, for one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    pub token: String,
}

/// The session the `hoist_session` cookie stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionInfo {
    /// Sent back in `X-CSRF-Token` with every request made with the cookie whose method is not
    /// GET or HEAD. Empty for a request authed by a bearer token, which needs none.
    pub csrf_token: String,
    /// When the session ends: milliseconds since the Unix epoch (0 for a bearer token, which
    /// does not expire).
    pub expires_at: i64,
    /// The role of the token the session (or the request) was made with: the dashboard
    /// offers only what it may do.
    pub role: TokenRole,
    /// The one service that token is for; `null`: every service.
    #[schema(value_type = Option<String>)]
    pub service: Option<ServiceName>,
}
