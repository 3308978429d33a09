use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error the API answers, with a fitting HTTP status: `400` for input that breaks a rule
/// (the message names the field and the rule), `401` without a valid token, `404` for an
/// unknown service, deployment or endpoint, `409` for a refused rollback, `422` for an env
/// change that could not be applied, `500` otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiErrorBody {
    /// One line for a person: what was wrong and what is allowed.
    pub error: String,
}
