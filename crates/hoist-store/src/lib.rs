//! Hoist's state in SQLite (WAL). This crate is the only code that writes it; everything else
//! asks for records by their domain types.

mod access;
mod cron;
mod error;
mod logs;
mod migrations;
mod observe;
mod records;
mod session;
mod store;
mod token;
mod uploads;

pub use cron::{CronJobRecord, CronRunEnd, CronRunRecord, NewCronRun};
pub use error::StoreError;
pub use logs::{LogFilter, LogLine, LogStream, NewLogLine};
pub use observe::{EventRecord, MinuteMetrics, NewEvent};
pub use records::{
    DeploymentRecord, InstanceRecord, InstanceUsage, ServiceRecord, StepRecord, UsageDay,
    UsageDelta,
};
pub use session::{NewSession, SessionRecord};
pub use store::{LOG_BYTES_CAP, LastSwitch, StateChange, Store};
pub use token::{NewToken, TokenCheck, TokenRecord, TokenRefused};
pub use uploads::UploadRecord;

/// Milliseconds since the Unix epoch: the one time unit stored.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The UTC day of `ms` (milliseconds since the Unix epoch) as `YYYY-MM-DD`: the key usage is
/// summed under. A time outside the years 0000 to 9999 (a clock off by millennia) counts to
/// the first or last day of that span, so the key keeps its one form.
pub fn utc_day(ms: i64) -> String {
    let ts = jiff::Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    });
    let date = jiff::tz::Offset::UTC.to_datetime(ts).date();
    date.clamp(jiff::civil::date(0, 1, 1), jiff::civil::date(9999, 12, 31))
        .to_string()
}

/// `day` as the calendar date it writes, if it is one in exactly the form [`utc_day`] gives
/// (`YYYY-MM-DD`, the one that sorts by date as text).
pub(crate) fn parse_day(day: &str) -> Option<jiff::civil::Date> {
    // The ISO 8601 parser also takes `20261125`, `+002026-11-25` and a date with a time;
    // only the canonical form is a usage key.
    day.parse::<jiff::civil::Date>()
        .ok()
        .filter(|date| date.to_string() == day)
}
