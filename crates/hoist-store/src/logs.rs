use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
    /// Build output (the build's own stdout and stderr, and Hoist's progress lines).
    Build,
    /// Hoist's lines about an instance: started, ready, exited and why.
    System,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
            LogStream::Build => "build",
            LogStream::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<LogStream> {
        Some(match s {
            "stdout" => LogStream::Stdout,
            "stderr" => LogStream::Stderr,
            "build" => LogStream::Build,
            "system" => LogStream::System,
            _ => return None,
        })
    }
}

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
    /// The last `tail` lines (after the other filters).
    pub tail: Option<usize>,
}
