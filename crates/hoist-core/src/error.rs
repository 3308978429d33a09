use std::borrow::Cow;

use crate::DeploymentState;

/// The most characters of a user's value that an error message quotes. A message echoing a
/// 100 kB service name or header back would be as long as the input: unreadable on a terminal,
/// and an amplifier into logs. 100 characters are enough to recognise what was sent.
pub const ECHO_LIMIT: usize = 100;

/// A value of user input as an error message quotes it: at most [`ECHO_LIMIT`] characters,
/// and when cut, how long it was (`abc… (102400 bytes)`).
pub fn echo(value: &str) -> Cow<'_, str> {
    echo_within(value, ECHO_LIMIT)
}

/// [`echo`] with another limit: for messages a parser composed around the input (a TOML or
/// JSON error quoting the offending line), which need room for the parser's own words.
pub fn echo_within(value: &str, limit: usize) -> Cow<'_, str> {
    match value.char_indices().nth(limit) {
        None => Cow::Borrowed(value),
        Some((cut, _)) => Cow::Owned(format!("{}… ({} bytes)", &value[..cut], value.len())),
    }
}

/// A message some parser composed around the input (serde's "unknown field `…`"), with each
/// word longer than [`ECHO_LIMIT`] characters cut as [`echo`] cuts a value: the parser's own
/// words stay readable, whichever of them quotes the input.
pub fn echo_words(message: &str) -> Cow<'_, str> {
    if message.len() <= ECHO_LIMIT {
        return Cow::Borrowed(message);
    }
    let mut words = message.split(' ').map(echo_word);
    if !words.clone().any(|w| matches!(w, Cow::Owned(_))) {
        return Cow::Borrowed(message);
    }
    let mut out = words.next().map(Cow::into_owned).unwrap_or_default();
    for w in words {
        out.push(' ');
        out.push_str(&w);
    }
    Cow::Owned(out)
}

/// One word of [`echo_words`]: the quotes and punctuation around it are kept, so the cut reads
/// "field `abc… (N bytes)`,".
fn echo_word(word: &str) -> Cow<'_, str> {
    let core = word.trim_start_matches(['`', '\'', '"', '(', '[', '{']);
    let lead = &word[..word.len() - core.len()];
    let core_end = core.trim_end_matches(['`', '\'', '"', ':', ',', ';', '.', ')', ']', '}']);
    let trail = &core[core_end.len()..];
    match echo(core_end) {
        Cow::Borrowed(_) => Cow::Borrowed(word),
        Cow::Owned(cut) => Cow::Owned(format!("{lead}{cut}{trail}")),
    }
}

/// Room for a parser's message around a quoted value (see [`echo_within`]).
pub const MESSAGE_LIMIT: usize = 400;

/// Why a piece of user input (flag, API field, config file) was rejected.
///
/// Every variant names the field so that a message surfaced through the CLI or the API tells the
/// user exactly what to change without needing a stack trace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("invalid {field} '{value}': {rule}")]
    Invalid {
        field: &'static str,
        value: String,
        rule: String,
    },
    #[error("missing {field}: {hint}")]
    Missing { field: &'static str, hint: String },
    #[error("{file}: {message}")]
    File { file: &'static str, message: String },
    /// The root directory is not a real directory of the repository (see
    /// [`crate::RootDir::resolve_in`]).
    #[error("--root {root}: {message}")]
    Root { root: String, message: String },
}

impl SpecError {
    /// Shorthand for [`SpecError::Invalid`]; every validator builds one of these, so the value
    /// is cut to [`ECHO_LIMIT`] characters here, once for all of them.
    pub fn invalid(field: &'static str, value: impl Into<String>, rule: impl Into<String>) -> Self {
        let value = value.into();
        SpecError::Invalid {
            field,
            value: match echo(&value) {
                Cow::Borrowed(_) => value,
                Cow::Owned(cut) => cut,
            },
            rule: rule.into(),
        }
    }

    /// Shorthand for [`SpecError::File`]; the parser's message is cut to [`MESSAGE_LIMIT`]
    /// characters (a TOML error quotes the offending line, which may be a megabyte long).
    pub fn file(file: &'static str, message: impl Into<String>) -> Self {
        SpecError::File {
            file,
            message: echo_within(&message.into(), MESSAGE_LIMIT).into_owned(),
        }
    }

    /// The field the error is about, if it is about a single field.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            SpecError::Invalid { field, .. } | SpecError::Missing { field, .. } => Some(field),
            SpecError::Root { .. } => Some("root_dir"),
            SpecError::File { .. } => None,
        }
    }
}

/// A deployment state change that the lifecycle does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deployment cannot go from {from} to {to}")]
pub struct StateError {
    pub from: DeploymentState,
    pub to: DeploymentState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_display_names_field_value_and_rule() {
        let err = SpecError::invalid("memory", "64", "must be between 128 and 7076 MB");
        assert_eq!(
            err.to_string(),
            "invalid memory '64': must be between 128 and 7076 MB"
        );
        assert_eq!(err.field(), Some("memory"));
    }

    #[test]
    fn echoed_values_are_cut_to_100_characters() {
        assert_eq!(echo("short"), "short");
        let exact = "a".repeat(ECHO_LIMIT);
        assert_eq!(echo(&exact), exact.as_str());
        let long = "é".repeat(100_000);
        let shown = echo(&long);
        assert!(shown.starts_with(&"é".repeat(ECHO_LIMIT)), "{shown}");
        assert!(shown.ends_with("… (200000 bytes)"), "{shown}");
        assert!(shown.chars().count() < ECHO_LIMIT + 20);

        let err = SpecError::invalid("name", "x".repeat(100_000), "must be at most 63 characters");
        let text = err.to_string();
        assert!(text.len() < 200, "{} bytes", text.len());
        assert!(text.starts_with("invalid name 'xxxx"), "{text}");
        assert!(
            text.ends_with("(100000 bytes)': must be at most 63 characters"),
            "{text}"
        );

        let long = "b".repeat(10_000);
        let serde = format!("{long}: unknown field `{long}`, expected `source`");
        let shown = echo_words(&serde);
        assert!(shown.len() < 300, "{shown}");
        assert!(
            shown.contains(": unknown field `bbb") && shown.ends_with(" expected `source`"),
            "{shown}"
        );
        assert!(matches!(echo_words("short words only"), Cow::Borrowed(_)));

        let err = SpecError::file("hoist.toml", "y".repeat(10_000));
        assert!(err.to_string().len() < MESSAGE_LIMIT + 40);
    }

    #[test]
    fn missing_display() {
        let err = SpecError::Missing {
            field: "runtime",
            hint: "set --runtime".into(),
        };
        assert_eq!(err.to_string(), "missing runtime: set --runtime");
        assert_eq!(err.field(), Some("runtime"));
    }

    #[test]
    fn file_display() {
        let err = SpecError::File {
            file: "hoist.toml",
            message: "unknown key `strat`".into(),
        };
        assert_eq!(err.to_string(), "hoist.toml: unknown key `strat`");
        assert_eq!(err.field(), None);
    }

    #[test]
    fn state_error_display() {
        let err = StateError {
            from: DeploymentState::Live,
            to: DeploymentState::Failed,
        };
        assert_eq!(err.to_string(), "deployment cannot go from live to failed");
    }
}
