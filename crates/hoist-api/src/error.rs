//! Every error the API returns: `{"error": "..."}` ([`ApiErrorBody`]) with a fitting status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hoist_api_types::ApiErrorBody;
use hoist_control::ControlError;

#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) error: String,
    /// The request field or query parameter the error is about, when known.
    pub(crate) field: Option<String>,
}

/// The longest error message the API returns: room for a rule and a few quoted values.
pub(crate) const MAX_ERROR_CHARS: usize = 800;

impl ApiError {
    /// Each value an error quotes is cut where it is quoted ([`hoist_core::echo`]); this cut
    /// of the whole message is the last guard, so that no error body grows with its input.
    pub(crate) fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: hoist_core::echo_within(&hoist_core::echo_words(&error.into()), MAX_ERROR_CHARS)
                .into_owned(),
            field: None,
        }
    }

    /// The same error, about request field (or query parameter) `field`.
    pub(crate) fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    pub(crate) fn bad_request(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error)
    }

    pub(crate) fn not_found(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ApiErrorBody {
                error: self.error,
                field: self.field,
            }),
        )
            .into_response()
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> ApiError {
        let status = match &e {
            ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
            ControlError::ServiceNotFound(_)
            | ControlError::DeploymentNotFound(_)
            | ControlError::CronJobNotFound(_) => StatusCode::NOT_FOUND,
            ControlError::Rollback(_)
            | ControlError::CronJobExists(_)
            | ControlError::NoGitSource(_) => StatusCode::CONFLICT,
            ControlError::NotApplied(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ControlError::Upload(u) if u.is_bad_bundle() => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let field = match &e {
            ControlError::Invalid(spec) => request_field(spec),
            _ => None,
        };
        let error = ApiError::new(status, e.to_string());
        match field {
            Some(f) => error.with_field(f),
            None => error,
        }
    }
}

/// The request field a spec rule is about, by the name the request gives it (a deploy's
/// `root`, `start`); `None` for a rule about no one field (a config file's syntax).
pub(crate) fn request_field(e: &hoist_core::SpecError) -> Option<&'static str> {
    Some(match e.field()? {
        "root_dir" => "root",
        "start command" => "start",
        f @ ("source" | "name" | "branch" | "runtime" | "port" | "memory" | "env"
        | "min_instances" | "max_instances" | "concurrency" | "idle_freeze" | "idle_stop"
        | "startup_boost" | "upload" | "schedule" | "path" | "method" | "timezone"
        | "timeout" | "retries" | "job" | "static" | "static_prefix") => f,
        _ => return None,
    })
}

impl From<hoist_store::StoreError> for ApiError {
    fn from(e: hoist_store::StoreError) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl From<hoist_core::SpecError> for ApiError {
    fn from(e: hoist_core::SpecError) -> ApiError {
        let error = ApiError::bad_request(e.to_string());
        match request_field(&e) {
            Some(f) => error.with_field(f),
            None => error,
        }
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use hoist_core::{MemoryMb, RootDir, SpecError};

    use super::*;

    #[test]
    fn a_spec_error_names_the_request_field_it_is_about() {
        let e: ApiError = MemoryMb::parse("64mb").unwrap_err().into();
        assert_eq!(
            (e.status, e.field.as_deref()),
            (StatusCode::BAD_REQUEST, Some("memory"))
        );
        let e: ApiError = RootDir::new("../up").unwrap_err().into();
        assert_eq!(e.field.as_deref(), Some("root"), "{}", e.error);
        let missing = SpecError::Missing {
            field: "start command",
            hint: "set it".into(),
        };
        let e: ApiError = ControlError::Invalid(missing).into();
        assert_eq!(e.field.as_deref(), Some("start"));
        let e: ApiError = SpecError::file("hoist.toml", "bad syntax").into();
        assert_eq!(e.field, None);
        // The wire body leaves it out when there is none.
        let none = ApiErrorBody {
            error: "x".into(),
            field: None,
        };
        assert_eq!(serde_json::to_string(&none).unwrap(), r#"{"error":"x"}"#);
    }
}
