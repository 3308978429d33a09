#[derive(Debug, thiserror::Error)]
pub enum StoreError {
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
