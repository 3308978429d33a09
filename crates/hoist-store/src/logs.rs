use serde::{Deserialize, Serialize};

pub use hoist_core::LogStream;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewLogLine {
    pub service: String,
    pub deployment: Option<String>,
    pub instance: Option<String>,
    pub stream: LogStream,
    pub ts: i64,
    pub line: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogLine {
    pub id: i64,
    pub service: String,
    pub deployment: Option<String>,
    pub instance: Option<String>,
    pub stream: LogStream,
    pub ts: i64,
    pub line: String,
}

#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub deployment: Option<String>,
    /// Only build output.
    pub build_only: bool,
    /// Lines with an id greater than this.
    pub after_id: Option<i64>,
    /// Lines at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    pub instance: Option<String>,
    /// Only these streams (all when empty).
    pub streams: Vec<LogStream>,
    /// Lines containing this text (case-sensitive).
    pub grep: Option<String>,
    /// The last `tail` lines (after the other filters).
    pub tail: Option<usize>,
}

impl LogFilter {
    /// Whether a line of the filtered service passes the filter (for lines that arrive live;
    /// stored ones are filtered by the query).
    pub fn matches(&self, l: &LogLine) -> bool {
        self.deployment
            .as_ref()
            .is_none_or(|d| l.deployment.as_ref() == Some(d))
            && (!self.build_only || l.stream == LogStream::Build)
            && self.after_id.is_none_or(|a| l.id > a)
            && self.since_ms.is_none_or(|s| l.ts >= s)
            && self
                .instance
                .as_ref()
                .is_none_or(|i| l.instance.as_ref() == Some(i))
            && (self.streams.is_empty() || self.streams.contains(&l.stream))
            && self
                .grep
                .as_ref()
                .is_none_or(|g| l.line.contains(g.as_str()))
    }
}
