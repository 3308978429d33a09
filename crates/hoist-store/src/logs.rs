use serde::{Deserialize, Serialize};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::VariantNames,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
    /// Build output (the build's own stdout and stderr, and Hoist's progress lines).
    Build,
    /// Hoist's lines about an instance: started, ready, exited and why.
    System,
    /// One line per request the gateway answered for the service.
    Access,
}

impl LogStream {
    pub const ALL: &'static [LogStream] = <Self as strum::VariantArray>::VARIANTS;

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The stream named `s` (its text form, as stored and as `--stream` takes it).
    pub fn parse(s: &str) -> Option<LogStream> {
        s.parse().ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_has_one_text_form_in_the_store_in_json_and_on_the_command_line() {
        let texts: Vec<&str> = LogStream::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(texts, ["stdout", "stderr", "build", "system", "access"]);
        for &stream in LogStream::ALL {
            assert_eq!(LogStream::parse(stream.as_str()), Some(stream));
            assert_eq!(stream.to_string(), stream.as_str());
            let json = serde_json::to_string(&stream).unwrap();
            assert_eq!(json, format!("\"{}\"", stream.as_str()));
            assert_eq!(serde_json::from_str::<LogStream>(&json).unwrap(), stream);
        }
        assert_eq!(LogStream::parse("Stdout"), None);
        assert_eq!(LogStream::parse(""), None);
    }
}
