use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Something a user debugging the service wants to see: a 5xx answered, a crash, a failed
/// start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventRecord {
    pub id: i64,
    pub service: String,
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
    /// `http_5xx`, `crash`, `oom`, `start_failed`, ...
    pub kind: String,
    pub instance: Option<String>,
    pub deployment: Option<String>,
    pub detail: String,
    /// The log lines around it.
    pub context: Vec<String>,
}

/// `GET /v1/services/{name}/events` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The most events, newest first (default 50, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// One minute of one service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MinuteMetrics {
    /// Start of the minute, milliseconds since the Unix epoch.
    pub minute: i64,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Instances running at the end of the minute.
    pub instances: u64,
    /// Memory of the service's instances at the end of the minute.
    pub memory_mb: f64,
    /// CPU time the instances used during the minute.
    pub cpu_ms: u64,
}

/// `GET /v1/services/{name}/metrics` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeriesQuery {
    /// How far back: a duration with a unit, `60m` by default, `24h` at most (all that is kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// One service's usage on one UTC day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageDay {
    /// `YYYY-MM-DD`, UTC.
    #[schema(format = Date)]
    pub day: String,
    pub active_ms: u64,
    pub frozen_ms: u64,
    pub cpu_ms: u64,
    /// Active milliseconds times the memory in MB.
    pub mb_ms: u64,
    /// Memory over active time: `mb_ms / 1024 / 1000`.
    pub gb_seconds: f64,
    pub requests: u64,
    pub cold_starts: u64,
}

/// `GET /v1/services/{name}/usage` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Days back from today (default 30, 1 to 366).
    #[param(minimum = 1, maximum = 366)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
}
