//! Hoist's state in SQLite (WAL). This crate is the only code that writes it; everything else
//! asks for records by their domain types.

mod error;
mod logs;
mod migrations;
mod records;
mod store;
mod token;

pub use error::StoreError;
pub use logs::{LogFilter, LogLine, LogStream, NewLogLine};
pub use records::{DeploymentRecord, InstanceRecord, ServiceRecord, StepRecord};
pub use store::Store;

/// Milliseconds since the Unix epoch: the one time unit stored.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
