use std::str::FromStr;

use crate::{SpecError, variant_list};

/// The base image family a service is built and run on.
#[cfg_attr(
    feature = "schema",
    derive(utoipa::ToSchema),
    schema(rename_all = "lowercase")
)]
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
#[strum(serialize_all = "lowercase")]
pub enum Runtime {
    Python,
    Node,
    Go,
    Rust,
    /// Plain Debian: for static binaries or anything that brings its own toolchain.
    Debian,
    /// Python with Node.js beside it: a backend that builds its own frontend.
    #[strum(serialize = "python+node")]
    PythonNode,
}

impl Runtime {
    pub const ALL: &'static [Runtime] = <Self as strum::VariantArray>::VARIANTS;

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Guesses the runtime from the file names at the app root.
    ///
    /// Checked from the most to the least specific marker: Cargo.toml and go.mod are only ever
    /// there for their language, whereas a package.json often sits next to a Python or Go app
    /// just to drive frontend tooling.
    pub fn detect(files: &[&str]) -> Option<Runtime> {
        const MARKERS: [(&[&str], Runtime); 4] = [
            (&["Cargo.toml"], Runtime::Rust),
            (&["go.mod"], Runtime::Go),
            (
                &["requirements.txt", "pyproject.toml", "Pipfile"],
                Runtime::Python,
            ),
            (&["package.json"], Runtime::Node),
        ];
        MARKERS
            .iter()
            .find(|(markers, _)| files.iter().any(|f| markers.contains(f)))
            .map(|(_, runtime)| *runtime)
    }
}

/// True for version suffixes such as "1.22" or "-1.80" after a runtime name.
fn is_version_suffix(rest: &str) -> bool {
    let rest = rest.strip_prefix(['-', '@']).unwrap_or(rest);
    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

impl FromStr for Runtime {
    type Err = SpecError;

    /// Accepts the canonical names plus the aliases found in leapcell.yaml files
    /// ("python3.11", "nodejs20", "golang", ...), because the versions themselves are chosen by
    /// the base image, not by the user.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        // Before the `python` prefix, which it starts with.
        let runtime = if lower == "python+node" {
            Some(Runtime::PythonNode)
        } else if lower.starts_with("python") {
            Some(Runtime::Python)
        } else if lower.starts_with("node") {
            Some(Runtime::Node)
        } else if let Some(rest) = lower.strip_prefix("golang").or(lower.strip_prefix("go")) {
            (rest.is_empty() || is_version_suffix(rest)).then_some(Runtime::Go)
        } else if let Some(rest) = lower
            .strip_prefix("rustlang")
            .or(lower.strip_prefix("rust"))
        {
            (rest.is_empty() || is_version_suffix(rest)).then_some(Runtime::Rust)
        } else if lower == "debian" || lower == "static" {
            Some(Runtime::Debian)
        } else {
            None
        };
        runtime.ok_or_else(|| {
            SpecError::invalid(
                "runtime",
                s.trim(),
                format!("must be one of {}", variant_list::<Runtime>()),
            )
        })
    }
}

serde_via_str!(Runtime);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_roundtrip() {
        for &runtime in Runtime::ALL {
            assert_eq!(runtime.as_str().parse::<Runtime>().unwrap(), runtime);
            assert_eq!(runtime.to_string(), runtime.as_str());
        }
    }

    #[test]
    fn aliases() {
        let cases = [
            ("Python", Runtime::Python),
            ("python3", Runtime::Python),
            ("python3.11", Runtime::Python),
            ("PYTHON3.12", Runtime::Python),
            ("nodejs", Runtime::Node),
            ("node20", Runtime::Node),
            ("NodeJS18", Runtime::Node),
            ("golang", Runtime::Go),
            ("go1.22", Runtime::Go),
            ("Go", Runtime::Go),
            ("rust", Runtime::Rust),
            ("rustlang", Runtime::Rust),
            ("rust1.80", Runtime::Rust),
            ("debian", Runtime::Debian),
            ("static", Runtime::Debian),
            (" Static ", Runtime::Debian),
        ];
        for (text, runtime) in cases {
            assert_eq!(text.parse::<Runtime>().unwrap(), runtime, "{text:?}");
        }
    }

    #[test]
    fn rejects_unknown_listing_allowed_values() {
        for bad in ["", "ruby", "java", "gopher", "rusty", "deb", "pyth"] {
            let err = bad.parse::<Runtime>().unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with("invalid runtime '"), "{msg}");
            assert!(msg.contains("python, node, go, rust, debian"), "{msg}");
        }
    }

    #[test]
    fn detect_from_files() {
        assert_eq!(
            Runtime::detect(&["requirements.txt"]),
            Some(Runtime::Python)
        );
        assert_eq!(
            Runtime::detect(&["README.md", "pyproject.toml"]),
            Some(Runtime::Python)
        );
        assert_eq!(Runtime::detect(&["Pipfile"]), Some(Runtime::Python));
        assert_eq!(Runtime::detect(&["package.json"]), Some(Runtime::Node));
        assert_eq!(Runtime::detect(&["go.mod", "go.sum"]), Some(Runtime::Go));
        assert_eq!(Runtime::detect(&["Cargo.toml"]), Some(Runtime::Rust));
        assert_eq!(Runtime::detect(&["README.md", "Dockerfile"]), None);
        assert_eq!(Runtime::detect(&[]), None);
        // A package.json for asset tooling must not hide the real language.
        assert_eq!(
            Runtime::detect(&["package.json", "requirements.txt"]),
            Some(Runtime::Python)
        );
        assert_eq!(
            Runtime::detect(&["package.json", "go.mod"]),
            Some(Runtime::Go)
        );
    }

    #[test]
    fn serde_lowercase() {
        assert_eq!(serde_json::to_string(&Runtime::Node).unwrap(), "\"node\"");
        assert_eq!(
            serde_json::from_str::<Runtime>("\"python3.11\"").unwrap(),
            Runtime::Python
        );
        let err = serde_json::from_str::<Runtime>("\"cobol\"").unwrap_err();
        assert!(err.to_string().contains("invalid runtime 'cobol'"), "{err}");
    }
}
