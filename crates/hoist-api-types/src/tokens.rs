//! `/v1/tokens`: API tokens with a role (`admin`, `deploy`, `read`) and, for `deploy` and
//! `read`, optionally the one service they are for. Only an admin token manages them.

use hoist_core::{ServiceName, TokenId, TokenName, TokenRole};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/tokens`: makes a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// Unique among live tokens: letters, digits, `-`, `_` and `.`, at most 64 (`admin` is
    /// the server's own token's).
    #[schema(value_type = String, example = "ci")]
    pub name: TokenName,
    pub role: TokenRole,
    /// The one existing service a `deploy` or `read` token is for; left out, the token covers
    /// every service (and a `deploy` token may create new ones). An `admin` token takes none.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "web")]
    pub service: Option<ServiceName>,
}

/// A token as listed: everything but its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    /// `tok_` and 10 hex digits: what `hoist tokens revoke` takes.
    #[schema(value_type = String, example = "tok_0123456789")]
    pub id: TokenId,
    #[schema(value_type = String)]
    pub name: TokenName,
    pub role: TokenRole,
    /// `null`: every service.
    #[schema(value_type = Option<String>)]
    pub service: Option<ServiceName>,
    pub created_at: i64,
    /// Up to a minute behind the last request made with it; `null` before the first.
    pub last_used_at: Option<i64>,
    /// Set in the answer to a revoke.
    pub revoked_at: Option<i64>,
}

/// The answer to `POST /v1/tokens`: the token's secret, shown this once (the server keeps
/// only its hash), and the token as it will be listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// `Authorization: Bearer <secret>`, or `HOIST_TOKEN=<secret>` for the CLI.
    pub secret: String,
    pub token: TokenInfo,
}
