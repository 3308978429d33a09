/// What happened to a service that its owner wants to see (`hoist events`): stored and sent as
/// its text form (`http_5xx`, `crash`, `oom`, `start_failed`, `cron_failed`).
///
/// Declared in the alphabetical order of the text forms, so a map keyed by kind lists them as
/// a map keyed by the text did.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
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
pub enum EventKind {
    /// An instance exited while it was serving.
    Crash,
    /// A cron job's run failed after its last retry (5xx, timeout or no answer).
    CronFailed,
    /// The service answered a request with a 5xx status.
    #[strum(to_string = "http_5xx")]
    #[cfg_attr(feature = "schema", schema(rename = "http_5xx"))]
    Http5xx,
    /// An instance was killed for using more than its memory.
    Oom,
    /// An instance did not get ready.
    StartFailed,
}

text_enum!(EventKind, "event kind");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_keep_the_strings_stored_before_the_enum() {
        let texts: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            texts,
            ["crash", "cron_failed", "http_5xx", "oom", "start_failed"]
        );
        for &kind in EventKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), kind);
        }
        let mut sorted = texts.clone();
        sorted.sort_unstable();
        assert_eq!(texts, sorted, "declared in text order");
        assert!(serde_json::from_str::<EventKind>("\"http5xx\"").is_err());
    }
}
