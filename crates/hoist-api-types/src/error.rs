use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error the API answers, with a fitting HTTP status: `400` for input that breaks a rule
/// (the message names the field and the rule, `field` the field), `401` without a valid token
/// or session, `403` for a request made with the session cookie that lacks its CSRF token or
/// comes from another site, `404` for an unknown service, deployment or endpoint, `409` for a
/// refused rollback, `422` for an env change that could not be applied, `500` otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiErrorBody {
    /// One line for a person: what was wrong and what is allowed.
    pub error: String,
    /// The request field or query parameter a `400` is about (`port`, `memory`, `env`,
    /// `token`, ...), when there is one: a form shows the error next to that input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}
