/// Where a log line came from: stored, sent on the API and taken by `--stream` as its text
/// form (`stdout`, `stderr`, `build`, `system`, `access`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::VariantNames,
)]
#[strum(serialize_all = "lowercase")]
#[cfg_attr(
    feature = "schema",
    derive(utoipa::ToSchema),
    schema(rename_all = "lowercase")
)]
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

text_enum!(LogStream, "log stream");

impl LogStream {
    /// The stream named `s` (its text form, as stored and as `--stream` takes it).
    pub fn parse(s: &str) -> Option<LogStream> {
        s.parse().ok()
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
