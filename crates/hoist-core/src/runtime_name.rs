//! A runtime as a user names it: a family and, optionally, a version (`node@22`,
//! `python@3.13`, or a bare `node`). Leapcell's spellings (`nodejs20`, `python3.13`,
//! `go1.24`) read as the same thing. Which versions exist is the catalogue's business
//! (`runtime_catalog.rs`); this is only the name.

use std::fmt;
use std::str::FromStr;

use crate::{Runtime, SpecError};

/// Numbers separated by dots, at most three of them: `22`, `3.13`, `1.24.2`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuntimeVersion(Vec<u32>);

impl RuntimeVersion {
    pub fn components(&self) -> &[u32] {
        &self.0
    }

    /// Parses `22`, `v22`, `3.13.1`; `None` for anything else.
    pub fn parse(text: &str) -> Option<RuntimeVersion> {
        let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
        // `20.x` and `3.*` say "any of this line", which is what a shorter version means.
        let text = text
            .strip_suffix(".x")
            .or(text.strip_suffix(".X"))
            .or(text.strip_suffix(".*"))
            .unwrap_or(text);
        let parts: Option<Vec<u32>> = text
            .split('.')
            .map(|p| {
                (!p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| p.parse().ok())
                    .flatten()
            })
            .collect();
        parts
            .filter(|p| (1..=3).contains(&p.len()))
            .map(RuntimeVersion)
    }

    /// Whether this version names a line `line` belongs to, or a release within `line`:
    /// `3` and `3.13.1` both match the line `3.13`, `3.1` does not.
    pub fn matches_line(&self, line: &RuntimeVersion) -> bool {
        let n = self.0.len().min(line.0.len());
        self.0[..n] == line.0[..n]
    }
}

impl fmt::Display for RuntimeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// A runtime family and maybe a version. A stored spec of a server from before versions
/// existed holds a bare family (`"node"`): it reads as one with no version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuntimeName {
    pub family: Runtime,
    pub version: Option<RuntimeVersion>,
}

/// On the wire it is its text form, a string.
#[cfg(feature = "schema")]
impl utoipa::PartialSchema for RuntimeName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "A runtime and maybe its version: `node@22`, `python@3.13`, `go@1.24`, `python+node`, `node`.",
            ))
            .into()
    }
}

/// Named `Runtime` in the document, as the field's type was before it took versions: the
/// dashboard's types refer to it by that name.
#[cfg(feature = "schema")]
impl utoipa::ToSchema for RuntimeName {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Runtime")
    }
}

impl RuntimeName {
    pub fn new(family: Runtime, version: Option<RuntimeVersion>) -> RuntimeName {
        RuntimeName { family, version }
    }
}

impl From<Runtime> for RuntimeName {
    fn from(family: Runtime) -> RuntimeName {
        RuntimeName {
            family,
            version: None,
        }
    }
}

impl fmt::Display for RuntimeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{v}", self.family),
            None => write!(f, "{}", self.family),
        }
    }
}

/// The words a family is written with, longest first where one starts another.
const FAMILY_WORDS: &[(&str, Runtime)] = &[
    ("python+node", Runtime::PythonNode),
    ("python", Runtime::Python),
    ("nodejs", Runtime::Node),
    ("node", Runtime::Node),
    ("golang", Runtime::Go),
    ("go", Runtime::Go),
    ("rustlang", Runtime::Rust),
    ("rust", Runtime::Rust),
    ("debian", Runtime::Debian),
    ("static", Runtime::Debian),
];

const NAME_RULE: &str = "must be one of python, node, go, rust, debian, python+node, each with an optional @version (node@22, python@3.13)";
const VERSION_RULE: &str =
    "the version must be numbers separated by dots, e.g. node@22 or python@3.13";

impl FromStr for RuntimeName {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let lower = text.to_ascii_lowercase();
        let invalid = |rule: &str| SpecError::invalid("runtime", text, rule);
        if let Some((word, version)) = lower.split_once('@') {
            let family = FAMILY_WORDS
                .iter()
                .find(|(w, _)| *w == word)
                .map(|(_, f)| *f)
                .ok_or_else(|| invalid(NAME_RULE))?;
            let version = RuntimeVersion::parse(version).ok_or_else(|| invalid(VERSION_RULE))?;
            return Ok(RuntimeName::new(family, Some(version)));
        }
        // Leapcell's spellings: the version follows the word (`nodejs20`, `python3.13`,
        // `go1.24`), or a dash does (`node-20`).
        let (word, family) = FAMILY_WORDS
            .iter()
            .find(|(w, _)| lower.starts_with(w))
            .copied()
            .ok_or_else(|| invalid(NAME_RULE))?;
        let rest = &lower[word.len()..];
        if rest.is_empty() {
            return Ok(family.into());
        }
        let rest = rest.strip_prefix('-').unwrap_or(rest);
        if !rest.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(invalid(NAME_RULE));
        }
        let version = RuntimeVersion::parse(rest).ok_or_else(|| invalid(VERSION_RULE))?;
        Ok(RuntimeName::new(family, Some(version)))
    }
}

impl serde::Serialize for RuntimeName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for RuntimeName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> String {
        s.parse::<RuntimeName>().unwrap().to_string()
    }

    #[test]
    fn at_versions_and_bare_names() {
        assert_eq!(name("node@22"), "node@22");
        assert_eq!(name("python@3.13"), "python@3.13");
        assert_eq!(name("go@1.24"), "go@1.24");
        assert_eq!(name(" Node@v22 "), "node@22");
        assert_eq!(name("node@20.x"), "node@20");
        assert_eq!(name("nodejs@22.11.0"), "node@22.11.0");
        assert_eq!(name("node"), "node");
        assert_eq!(name("python+node"), "python+node");
        assert_eq!(name("debian@13"), "debian@13");
        assert_eq!(name("static"), "debian");
    }

    #[test]
    fn leapcell_spellings() {
        assert_eq!(name("nodejs20"), "node@20");
        assert_eq!(name("NodeJS18"), "node@18");
        assert_eq!(name("node-22"), "node@22");
        assert_eq!(name("nodejs20.x"), "node@20");
        assert_eq!(name("python3.13"), "python@3.13");
        assert_eq!(name("python3"), "python@3");
        assert_eq!(name("go1.24"), "go@1.24");
        assert_eq!(name("golang1.24"), "go@1.24");
        assert_eq!(name("golang"), "go");
        assert_eq!(name("rust1.80"), "rust@1.80");
    }

    #[test]
    fn bad_names_and_versions_name_the_field() {
        for bad in [
            "",
            "ruby",
            "java@21",
            "gopher",
            "rusty",
            "pyth",
            "node@",
            "node@22.1.2.3",
            "node@abc",
            "node@-1",
            "python3.x.1",
            "node@lts",
        ] {
            let err = bad.parse::<RuntimeName>().unwrap_err();
            assert_eq!(err.field(), Some("runtime"), "{bad:?}");
            assert!(err.to_string().starts_with("invalid runtime '"), "{err}");
        }
        let err = "ruby".parse::<RuntimeName>().unwrap_err().to_string();
        assert!(
            err.contains("python, node, go, rust, debian, python+node"),
            "{err}"
        );
    }

    #[test]
    fn a_stored_bare_family_still_loads_and_round_trips() {
        let old: RuntimeName = serde_json::from_str("\"node\"").unwrap();
        assert_eq!(old, RuntimeName::from(Runtime::Node));
        let new: RuntimeName = serde_json::from_str("\"node@22\"").unwrap();
        assert_eq!(serde_json::to_string(&new).unwrap(), "\"node@22\"");
        assert!(serde_json::from_str::<RuntimeName>("\"cobol\"").is_err());
    }

    #[test]
    fn version_lines() {
        let v = |s: &str| RuntimeVersion::parse(s).unwrap();
        assert!(v("3").matches_line(&v("3.13")));
        assert!(v("3.13.1").matches_line(&v("3.13")));
        assert!(v("3.13").matches_line(&v("3.13")));
        assert!(!v("3.1").matches_line(&v("3.13")));
        assert!(!v("2").matches_line(&v("22")));
        assert!(v("22.11.0").matches_line(&v("22")));
    }
}
