//! Hoist's state in SQLite (WAL). This crate is the only code that writes it; everything else
//! asks for records by their domain types.

mod access;
mod error;
mod logs;
mod migrations;
mod observe;
mod records;
mod store;
mod token;

pub use error::StoreError;
pub use logs::{LogFilter, LogLine, LogStream, NewLogLine};
pub use observe::{EventRecord, MinuteMetrics, NewEvent};
pub use records::{
    DeploymentRecord, InstanceRecord, InstanceUsage, ServiceRecord, StepRecord, UsageDay,
    UsageDelta,
};
pub use store::{LOG_BYTES_CAP, StateChange, Store};

/// Milliseconds since the Unix epoch: the one time unit stored.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

const MS_PER_DAY: i64 = 24 * 60 * 60 * 1000;

/// The UTC day of `ms` (milliseconds since the Unix epoch) as `YYYY-MM-DD`: the key usage is
/// summed under.
pub fn utc_day(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Year, month (1-12) and day (1-31) of the proleptic Gregorian calendar for a count of days
/// since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01, so each 400-year era starts on 1 March and the leap day
    // is the last day of a year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March is 0
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
