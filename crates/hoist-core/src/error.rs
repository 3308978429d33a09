use crate::DeploymentState;

/// Why a piece of user input (flag, API field, config file) was rejected.
///
/// Every variant names the field so that a message surfaced through the CLI or the API tells the
/// user exactly what to change without needing a stack trace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("invalid {field} '{value}': {rule}")]
    Invalid {
        field: &'static str,
        value: String,
        rule: String,
    },
    #[error("missing {field}: {hint}")]
    Missing { field: &'static str, hint: String },
    #[error("{file}: {message}")]
    File { file: &'static str, message: String },
}

impl SpecError {
    /// Shorthand for [`SpecError::Invalid`]; most validators build one of these.
    pub fn invalid(field: &'static str, value: impl Into<String>, rule: impl Into<String>) -> Self {
        SpecError::Invalid {
            field,
            value: value.into(),
            rule: rule.into(),
        }
    }

    /// The field the error is about, if it is about a single field.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            SpecError::Invalid { field, .. } | SpecError::Missing { field, .. } => Some(field),
            SpecError::File { .. } => None,
        }
    }
}

/// A deployment state change that the lifecycle does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deployment cannot go from {from} to {to}")]
pub struct StateError {
    pub from: DeploymentState,
    pub to: DeploymentState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_display_names_field_value_and_rule() {
        let err = SpecError::invalid("memory", "64", "must be between 128 and 7076 MB");
        assert_eq!(
            err.to_string(),
            "invalid memory '64': must be between 128 and 7076 MB"
        );
        assert_eq!(err.field(), Some("memory"));
    }

    #[test]
    fn missing_display() {
        let err = SpecError::Missing {
            field: "runtime",
            hint: "set --runtime".into(),
        };
        assert_eq!(err.to_string(), "missing runtime: set --runtime");
        assert_eq!(err.field(), Some("runtime"));
    }

    #[test]
    fn file_display() {
        let err = SpecError::File {
            file: "hoist.toml",
            message: "unknown key `strat`".into(),
        };
        assert_eq!(err.to_string(), "hoist.toml: unknown key `strat`");
        assert_eq!(err.field(), None);
    }

    #[test]
    fn state_error_display() {
        let err = StateError {
            from: DeploymentState::Live,
            to: DeploymentState::Failed,
        };
        assert_eq!(err.to_string(), "deployment cannot go from live to failed");
    }
}
