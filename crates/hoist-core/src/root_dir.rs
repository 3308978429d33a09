use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::SpecError;

const FIELD: &str = "root_dir";

/// The directory inside the repository that holds the app (for monorepos).
///
/// Stored normalized ("a/b", or "" for the repo root) and guaranteed never to escape the checkout,
/// so build code can join it onto the checkout path without re-checking.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RootDir(String);

impl RootDir {
    /// The repository root.
    pub fn root() -> RootDir {
        RootDir::default()
    }

    pub fn new(text: &str) -> Result<RootDir, SpecError> {
        if text.starts_with('/') || text.starts_with('\\') {
            return Err(SpecError::invalid(
                FIELD,
                text,
                "must be a path relative to the repository root",
            ));
        }
        if text.contains('\0') {
            return Err(SpecError::invalid(
                FIELD,
                text,
                "must not contain a NUL byte",
            ));
        }
        let mut parts = Vec::new();
        for part in text.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    return Err(SpecError::invalid(
                        FIELD,
                        text,
                        "must not contain '..' (it has to stay inside the repository)",
                    ));
                }
                part => parts.push(part),
            }
        }
        Ok(RootDir(parts.join("/")))
    }

    /// The normalized path; "" for the repository root.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The app directory inside a checkout at `checkout`.
    pub fn join_onto(&self, checkout: &Path) -> PathBuf {
        if self.is_root() {
            checkout.to_path_buf()
        } else {
            checkout.join(&self.0)
        }
    }
}

/// Shows "." for the root because an empty string reads as a missing value in CLI output.
impl fmt::Display for RootDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            f.write_str(".")
        } else {
            f.write_str(&self.0)
        }
    }
}

impl FromStr for RootDir {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RootDir::new(s)
    }
}

impl TryFrom<String> for RootDir {
    type Error = SpecError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        RootDir::new(&value)
    }
}

impl TryFrom<&str> for RootDir {
    type Error = SpecError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        RootDir::new(value)
    }
}

serde_via_str!(RootDir);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_forms() {
        for text in ["", ".", "./", ".//.", "././"] {
            let dir = RootDir::new(text).unwrap();
            assert!(dir.is_root(), "{text:?}");
            assert_eq!(dir.as_str(), "");
            assert_eq!(dir.to_string(), ".");
        }
        assert!(RootDir::root().is_root());
        assert!(RootDir::default().is_root());
    }

    #[test]
    fn normalizes() {
        let cases = [
            ("./a/b/", "a/b"),
            ("a", "a"),
            ("a//b", "a/b"),
            ("a/./b/.", "a/b"),
            ("services/api", "services/api"),
            ("..a/b..", "..a/b.."),
        ];
        for (text, expected) in cases {
            let dir: RootDir = text.parse().unwrap();
            assert_eq!(dir.as_str(), expected, "{text:?}");
            assert!(!dir.is_root());
            assert_eq!(dir.to_string(), expected);
        }
    }

    #[test]
    fn rejects_escapes() {
        for text in [
            "/etc",
            "/",
            "..",
            "../x",
            "a/../../b",
            "a/..",
            "\\x",
            "a\0b",
        ] {
            let err = RootDir::new(text).unwrap_err();
            assert!(
                err.to_string().starts_with("invalid root_dir '"),
                "{text:?}: {err}"
            );
        }
        assert!(
            RootDir::new("a/../b")
                .unwrap_err()
                .to_string()
                .contains("'..'")
        );
        assert!(
            RootDir::new("/abs")
                .unwrap_err()
                .to_string()
                .contains("relative")
        );
    }

    #[test]
    fn join_onto_checkout() {
        let checkout = Path::new("/var/lib/hoist/src");
        assert_eq!(RootDir::root().join_onto(checkout), checkout);
        assert_eq!(
            RootDir::new("a/b").unwrap().join_onto(checkout),
            Path::new("/var/lib/hoist/src/a/b")
        );
    }

    #[test]
    fn serde_as_string() {
        let dir = RootDir::new("./api/").unwrap();
        assert_eq!(serde_json::to_string(&dir).unwrap(), "\"api\"");
        assert_eq!(serde_json::from_str::<RootDir>("\"api\"").unwrap(), dir);
        assert!(serde_json::from_str::<RootDir>("\"\"").unwrap().is_root());
        assert!(serde_json::from_str::<RootDir>("\"../x\"").is_err());
    }
}
