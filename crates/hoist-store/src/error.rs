use hoist_core::{DeploymentId, DeploymentState};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The lifecycle does not allow this change: a bug in the caller. Nothing was written.
    #[error("deployment {id} cannot go from {from} to {to}")]
    RefusedTransition {
        id: DeploymentId,
        from: DeploymentState,
        to: DeploymentState,
    },
    /// The deployment was not in the state the caller saw: another change won. Nothing was
    /// written.
    #[error(
        "deployment {id} is {}, not {expected} as expected",
        .found.map_or("gone", DeploymentState::as_str)
    )]
    StateMoved {
        id: DeploymentId,
        expected: DeploymentState,
        found: Option<DeploymentState>,
    },
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("access log: {0}")]
    AccessLog(String),
    #[error("database schema version {found} is newer than this binary knows ({known})")]
    TooNew { found: i64, known: i64 },
    #[error("invalid day '{0}': expected a date as YYYY-MM-DD")]
    InvalidDay(String),
    #[error("{what} {value} is too large to store")]
    OutOfRange { what: &'static str, value: u64 },
}
