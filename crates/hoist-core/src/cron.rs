//! Cron jobs: what a user writes (`--schedule`, `--path`, `[[cron]]` in hoist.toml), parsed
//! into validated types, and when a schedule fires next.
//!
//! Schedules are croner's: five fields (minute hour day-of-month month day-of-week) or six
//! with a leading seconds field, evaluated in an IANA time zone by jiff. Over a daylight
//! saving change croner's rules hold (its README, "DST Handling"): in a spring-forward gap a
//! fixed-time job runs at the first valid time after the gap and an interval job skips the
//! missing times; in a fall-back overlap a fixed-time job runs once (the first pass) and an
//! interval job runs in both passes. Searches move in real time, so a next run is never in
//! the past.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::{SpecError, format_duration, parse_duration_in};

const SCHEDULE_EXPECTED: &str = "expected five fields (minute hour day-of-month month day-of-week), or six with a leading seconds field, e.g. '*/5 * * * *' or '*/10 * * * * *'";

/// A validated cron expression, kept with the text it was written as.
#[derive(Clone)]
pub struct CronSchedule {
    text: String,
    cron: Cron,
}

impl CronSchedule {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the schedule has its own seconds field (runs more often than once a minute).
    pub fn has_seconds(&self) -> bool {
        self.text.split_whitespace().count() == 6
    }

    /// The first time strictly after `after` that the schedule names, in `tz`; `None` if there
    /// is none before croner's search limit (year 5000).
    pub fn next_after(&self, tz: &CronTimezone, after: Timestamp) -> Option<Timestamp> {
        let zoned = after.to_zoned(tz.zone.clone());
        self.cron
            .find_next_occurrence(&zoned, false)
            .ok()
            .map(|z| z.timestamp())
    }
}

impl FromStr for CronSchedule {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let fields = text.split_whitespace().count();
        // croner also takes a seventh (year) field and `@hourly`-style nicknames; only the
        // forms the docs promise are accepted, so a schedule means the same everywhere.
        if !(5..=6).contains(&fields) {
            return Err(SpecError::invalid(
                "schedule",
                text,
                format!("has {fields} fields; {SCHEDULE_EXPECTED}"),
            ));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(text).map_err(|e| {
            SpecError::invalid("schedule", text, format!("{e}; {SCHEDULE_EXPECTED}"))
        })?;
        // A pattern that parses but never fires (`0 0 30 2 *`, 30 February) is refused too:
        // it would be accepted and silently never run.
        let probe = CronSchedule {
            text: text.to_string(),
            cron,
        };
        if probe
            .next_after(&CronTimezone::utc(), Timestamp::now())
            .is_none()
        {
            return Err(SpecError::invalid(
                "schedule",
                text,
                "never matches a real date",
            ));
        }
        Ok(probe)
    }
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronSchedule({:?})", self.text)
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
impl Eq for CronSchedule {}

serde_via_str!(CronSchedule);

/// An IANA time zone by name (`Europe/Berlin`), UTC by default.
#[derive(Clone)]
pub struct CronTimezone {
    name: String,
    zone: TimeZone,
}

impl CronTimezone {
    pub fn utc() -> CronTimezone {
        CronTimezone {
            name: "UTC".into(),
            zone: TimeZone::UTC,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }
}

impl Default for CronTimezone {
    fn default() -> Self {
        CronTimezone::utc()
    }
}

impl FromStr for CronTimezone {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let name = text.trim();
        // jiff also reads a POSIX TZ string or a path; only names of the IANA database are
        // time zones here.
        if name.is_empty() || name.starts_with('/') || name.contains("..") {
            return Err(SpecError::invalid(
                "timezone",
                text,
                "expected an IANA time zone name such as UTC, Europe/Berlin or America/New_York",
            ));
        }
        let zone = TimeZone::get(name).map_err(|_| {
            SpecError::invalid(
                "timezone",
                text,
                "unknown time zone; expected an IANA name such as UTC, Europe/Berlin or America/New_York",
            )
        })?;
        Ok(CronTimezone {
            name: name.to_string(),
            zone,
        })
    }
}

impl fmt::Debug for CronTimezone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronTimezone({:?})", self.name)
    }
}

impl PartialEq for CronTimezone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for CronTimezone {}

serde_via_str!(CronTimezone);

/// The path (and query) a run requests, as the gateway forwards it: `/tasks/cleanup?full=1`.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronPath(String);

impl CronPath {
    pub const MAX_LEN: usize = 2048;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CronPath {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |rule: &str| {
            SpecError::invalid(
                "path",
                text,
                format!("{rule}; expected an absolute path such as /tasks/cleanup"),
            )
        };
        if !text.starts_with('/') {
            return Err(bad("must start with '/'"));
        }
        if text.starts_with("//") {
            return Err(bad("must not start with '//'"));
        }
        if text.len() > CronPath::MAX_LEN {
            return Err(bad("must be at most 2048 bytes"));
        }
        // What a request target may hold (RFC 3986 characters, percent-encoded otherwise).
        if let Some(c) = text.chars().find(|c| {
            !c.is_ascii_graphic()
                || matches!(
                    c,
                    '#' | '"' | '<' | '>' | '\\' | '^' | '`' | '{' | '|' | '}'
                )
        }) {
            return Err(bad(&format!(
                "contains {c:?}, which a request path cannot hold unencoded"
            )));
        }
        Ok(CronPath(text.to_string()))
    }
}

serde_via_str!(CronPath);

/// The HTTP method of a run.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::VariantNames,
)]
#[strum(serialize_all = "UPPERCASE")]
#[cfg_attr(
    feature = "schema",
    derive(utoipa::ToSchema),
    schema(rename_all = "UPPERCASE")
)]
pub enum CronMethod {
    #[default]
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

text_enum!(CronMethod, "method");

/// What a run due while the previous one is still in flight does.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::VariantNames,
)]
#[strum(serialize_all = "snake_case")]
#[cfg_attr(
    feature = "schema",
    derive(utoipa::ToSchema),
    schema(rename_all = "snake_case")
)]
pub enum CronConcurrency {
    /// The new run is skipped (and recorded as skipped).
    #[default]
    Forbid,
    /// Both run.
    Allow,
    /// The previous request is cancelled and the new one runs.
    Replace,
}

text_enum!(CronConcurrency, "concurrency");

/// Where a job was defined: the API (and CLI) or the repository's hoist.toml. A deploy
/// replaces the hoist.toml jobs and leaves the others.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::VariantNames,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub enum CronSource {
    #[strum(to_string = "api")]
    #[cfg_attr(feature = "schema", schema(rename = "api"))]
    Api,
    #[strum(to_string = "hoist.toml")]
    #[cfg_attr(feature = "schema", schema(rename = "hoist.toml"))]
    HoistToml,
}

text_enum!(CronSource, "cron source");

/// What became of one attempt of a run.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::VariantNames,
)]
#[strum(serialize_all = "snake_case")]
#[cfg_attr(
    feature = "schema",
    derive(utoipa::ToSchema),
    schema(rename_all = "snake_case")
)]
pub enum CronRunStatus {
    /// In flight now.
    Running,
    /// Answered below 500.
    Ok,
    /// The last attempt failed (5xx, timeout, no answer, cancelled).
    Failed,
    /// Due while the previous run was in flight, under `forbid`.
    Skipped,
    /// Due while the server was down.
    Missed,
    /// This attempt failed and another one follows.
    Retried,
}

text_enum!(CronRunStatus, "run status");

/// A job's id within its service: given (`--job cleanup`) or made from its path.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CronJobId(String);

impl CronJobId {
    pub const MAX_LEN: usize = 63;

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An id made from a path and method, for jobs that name none: `/tasks/cleanup` →
    /// `tasks-cleanup` (`post-tasks-cleanup` for a POST), `/` → `root`.
    pub fn from_path(path: &CronPath, method: CronMethod) -> CronJobId {
        let route = path.as_str().split('?').next().unwrap_or("/");
        let mut id = String::new();
        if method != CronMethod::Get {
            id.push_str(&method.as_str().to_ascii_lowercase());
        }
        for c in route.chars() {
            let c = c.to_ascii_lowercase();
            let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            };
            if c == '-' && (id.is_empty() || id.ends_with('-')) {
                continue;
            }
            id.push(c);
        }
        let mut id = id.trim_end_matches('-').to_string();
        if id.is_empty() {
            id = "root".into();
        }
        id.truncate(CronJobId::MAX_LEN);
        CronJobId(id.trim_end_matches('-').to_string())
    }
}

impl FromStr for CronJobId {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let ok = !text.is_empty()
            && text.len() <= CronJobId::MAX_LEN
            && text.as_bytes()[0].is_ascii_alphanumeric()
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            return Err(SpecError::invalid(
                "job",
                text,
                "expected 1 to 63 lowercase letters, digits, '-' or '_', starting with a letter or digit",
            ));
        }
        Ok(CronJobId(text.to_string()))
    }
}

impl fmt::Display for CronJobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

serde_via_str!(CronJobId);

/// How long one attempt may take, and its bounds (the gateway's request limit is 15 minutes).
pub const CRON_TIMEOUT_DEFAULT: Duration = Duration::from_secs(3 * 60);
pub const CRON_TIMEOUT_MIN: Duration = Duration::from_secs(1);
pub const CRON_TIMEOUT_MAX: Duration = Duration::from_secs(15 * 60);
/// At most this many retries of one run.
pub const CRON_RETRIES_MAX: u32 = 10;

/// A job's timeout from its text form (`15m`), checked against the bounds.
pub fn parse_cron_timeout(text: &str) -> Result<Duration, SpecError> {
    parse_duration_in("timeout", text, CRON_TIMEOUT_MIN, CRON_TIMEOUT_MAX)
}

/// A retry count, checked against its bound.
pub fn check_cron_retries(retries: i64) -> Result<u32, SpecError> {
    u32::try_from(retries)
        .ok()
        .filter(|r| *r <= CRON_RETRIES_MAX)
        .ok_or_else(|| {
            SpecError::invalid(
                "retries",
                retries.to_string(),
                format!("expected a whole number from 0 to {CRON_RETRIES_MAX}"),
            )
        })
}

/// A job as defined: every setting validated, defaults filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronJobSpec {
    pub id: CronJobId,
    pub schedule: CronSchedule,
    pub path: CronPath,
    pub method: CronMethod,
    pub timezone: CronTimezone,
    pub timeout: Duration,
    pub concurrency: CronConcurrency,
    pub retries: u32,
}

impl CronJobSpec {
    /// The next scheduled time strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        self.schedule.next_after(&self.timezone, after)
    }
}

impl fmt::Display for CronJobSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} '{}' {} {} ({}, timeout {})",
            self.id,
            self.schedule,
            self.method,
            self.path.as_str(),
            self.timezone.as_str(),
            format_duration(self.timeout)
        )
    }
}

/// A job as `[[cron]]` in hoist.toml (and in a recorded spec) has it.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronFileJob {
    pub id: CronJobId,
    #[cfg_attr(feature = "schema", schema(value_type = String))]
    pub schedule: CronSchedule,
    pub path: CronPath,
    pub method: CronMethod,
    #[cfg_attr(feature = "schema", schema(value_type = String))]
    pub timezone: CronTimezone,
    pub timeout_ms: u64,
    pub concurrency: CronConcurrency,
    pub retries: u32,
}

impl From<&CronJobSpec> for CronFileJob {
    fn from(j: &CronJobSpec) -> Self {
        CronFileJob {
            id: j.id.clone(),
            schedule: j.schedule.clone(),
            path: j.path.clone(),
            method: j.method,
            timezone: j.timezone.clone(),
            timeout_ms: crate::millis(j.timeout),
            concurrency: j.concurrency,
            retries: j.retries,
        }
    }
}

impl From<&CronFileJob> for CronJobSpec {
    fn from(j: &CronFileJob) -> Self {
        CronJobSpec {
            id: j.id.clone(),
            schedule: j.schedule.clone(),
            path: j.path.clone(),
            method: j.method,
            timezone: j.timezone.clone(),
            timeout: Duration::from_millis(j.timeout_ms),
            concurrency: j.concurrency,
            retries: j.retries,
        }
    }
}

#[cfg(test)]
#[path = "cron_tests.rs"]
mod tests;
