use std::fmt;
use std::marker::PhantomData;

use hoist_core::DeploymentState;
use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::{IntoParams, ToSchema};

pub use hoist_core::LogStream;

/// One stored log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// Increasing: a follower that reconnects asks for the lines after the last it saw.
    pub id: i64,
    pub service: String,
    pub deployment: Option<String>,
    pub instance: Option<String>,
    pub stream: LogStream,
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
    pub line: String,
}

/// How a log stream is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (`application/x-ndjson`), the default.
    Ndjson,
    /// Server-Sent Events (`text/event-stream`), also chosen by `Accept: text/event-stream`.
    Sse,
}

/// A comma-separated list in a query parameter (`stream=stdout,access`), each item decoded as
/// a `T`: an unknown item gets serde's "unknown variant `x`, expected one of ...".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommaList<T>(pub Vec<T>);

impl<T> Default for CommaList<T> {
    fn default() -> Self {
        CommaList(Vec::new())
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for CommaList<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<T: DeserializeOwned> serde::de::Visitor<'_> for V<T> {
            type Value = CommaList<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a comma-separated list")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
                s.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        T::deserialize(
                            IntoDeserializer::<serde::de::value::Error>::into_deserializer(p),
                        )
                        .map_err(E::custom)
                    })
                    .collect::<Result<Vec<T>, E>>()
                    .map(CommaList)
            }
        }
        deserializer.deserialize_str(V(PhantomData))
    }
}

impl<T: Serialize> Serialize for CommaList<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|t| match serde_json::to_value(t) {
                Ok(serde_json::Value::String(s)) => s,
                Ok(other) => other.to_string(),
                Err(_) => String::new(),
            })
            .collect();
        serializer.serialize_str(&parts.join(","))
    }
}

/// `GET /v1/deployments/{id}/events` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeploymentEventsQuery {
    /// `sse` for Server-Sent Events (also chosen by `Accept: text/event-stream`); NDJSON
    /// otherwise.
    #[param(inline)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<LogFormat>,
}

/// `GET /v1/services/{name}/logs` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Keep the response open and send new lines as they are stored.
    #[serde(default)]
    pub follow: bool,
    /// Only build output (of the latest deployment unless `deployment` is given).
    #[serde(default)]
    pub build: bool,
    #[param(example = "d-0123456789")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    #[param(example = "i-0123456789")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Comma-separated streams: stdout, stderr, access, build, system (all when not given).
    #[param(value_type = Option<String>, example = "stdout,stderr")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<CommaList<LogStream>>,
    /// Only lines from this long ago on: a duration with a unit, e.g. `10m`, `2h`, `7d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Only lines containing this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grep: Option<String>,
    /// The most lines of backlog (default 1000; 100 with `follow`; 10000 with `grep` or `since`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<usize>,
    #[param(inline)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<LogFormat>,
    /// With `follow`: the most new lines a second to send (1 to 100000). Lines that come
    /// faster are not sent; a `LogsSkipped` (an SSE event named `skipped`, or an NDJSON object
    /// with `skipped`) says how many, at most four times a second. The backlog is not limited.
    /// For a person watching a busy service (the dashboard asks for 100); every line stays
    /// stored and can be read without `follow`.
    #[param(minimum = 1, maximum = 100000)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<u32>,
}

/// Lines of a followed service's logs that `max_rate` kept from being sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogsSkipped {
    /// How many lines were not sent since the previous `LogsSkipped`.
    pub skipped: u64,
    /// Every line up to this id was sent or counted here (the stream's resume point: the SSE
    /// event's id).
    pub through_id: i64,
}

/// How a deployment ended (or that it went live), the last event of its stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentOutcome {
    pub id: String,
    pub service: String,
    /// `live`, `failed`, `cancelled` or `superseded`.
    pub state: DeploymentState,
    /// Why it failed or was cancelled.
    pub reason: Option<String>,
    /// Where the service answers, when live.
    pub url: Option<String>,
}

/// One item of a deployment's event stream (`GET /v1/deployments/{id}/events`, NDJSON): its
/// log lines, then its outcome. Tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    Log(LogLine),
    Deployment(DeploymentOutcome),
}
