//! Static files: the folder of an app's build that the gateway serves itself (`--static DIR`,
//! `static = "dist"` or a `[static]` table in hoist.toml), where its files appear in the
//! site's URL space (`prefix`), and whether unknown paths fall back to `index.html` (`spa`).
//!
//! Only the names are checked here; the folder itself is looked for in the build's output by
//! the deploy, which refuses one reached through a symlink.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{SpecError, echo};

/// The request field (and hoist.toml key) a folder error names.
pub const STATIC_FIELD: &str = "static";
/// The request field a prefix error names.
pub const STATIC_PREFIX_FIELD: &str = "static_prefix";
/// PATH_MAX, as for the root directory: a longer folder could not be opened.
const MAX_LEN: usize = 4096;

/// A folder relative to the app's root directory, normalized (`dist`, `web/build`), never
/// empty, absolute or climbing out with `..`.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StaticDir(String);

impl StaticDir {
    pub fn new(text: &str) -> Result<StaticDir, SpecError> {
        let refuse = |rule: &str| SpecError::invalid(STATIC_FIELD, text, rule);
        if text.starts_with('/') || text.starts_with('\\') {
            return Err(refuse(
                "must be a folder relative to the app's root directory, not an absolute path",
            ));
        }
        if text.len() > MAX_LEN {
            return Err(refuse(
                "must be at most 4096 bytes (the longest path Linux opens)",
            ));
        }
        if text.contains('\0') {
            return Err(refuse("must not contain a NUL byte"));
        }
        let mut parts = Vec::new();
        for part in text.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    return Err(refuse(
                        "must not contain '..' (it has to stay inside the app's root directory)",
                    ));
                }
                part => parts.push(part),
            }
        }
        if parts.is_empty() {
            // The whole app directory would put the source (and its secrets files) on the web.
            return Err(refuse(
                "must name a folder inside the app's root directory (e.g. dist), not the directory itself",
            ));
        }
        Ok(StaticDir(parts.join("/")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The folder's components, in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for StaticDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for StaticDir {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StaticDir::new(s)
    }
}

serde_via_str!(StaticDir);

/// Where the folder's files appear in the site: `/` (the default: `dist/app.js` is `/app.js`)
/// or a path such as `/assets`. Stored without a trailing slash, except `/` itself.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StaticPrefix(String);

impl Default for StaticPrefix {
    fn default() -> StaticPrefix {
        StaticPrefix("/".into())
    }
}

impl StaticPrefix {
    pub fn new(text: &str) -> Result<StaticPrefix, SpecError> {
        let refuse = |rule: &str| SpecError::invalid(STATIC_PREFIX_FIELD, text, rule);
        if !text.starts_with('/') {
            return Err(refuse("must start with '/' (e.g. / or /assets)"));
        }
        if text.len() > 1024 {
            return Err(refuse("must be at most 1024 bytes"));
        }
        let mut parts = Vec::new();
        for part in text.split('/') {
            match part {
                "" => {}
                "." | ".." => return Err(refuse("must not contain '.' or '..' segments")),
                part if part.chars().any(|c| c.is_control() || c.is_whitespace()) => {
                    return Err(refuse("must not contain spaces or control characters"));
                }
                // A URL path as the browser sends it: a `?` or `#` would never reach the gateway
                // as part of the path, and `%` would make the prefix mean two paths.
                part if part.contains(['?', '#', '%', '\\']) => {
                    return Err(refuse("must not contain ? # % or \\"));
                }
                part => parts.push(part),
            }
        }
        Ok(StaticPrefix(format!("/{}", parts.join("/"))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }
}

impl fmt::Display for StaticPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for StaticPrefix {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StaticPrefix::new(s)
    }
}

serde_via_str!(StaticPrefix);

/// A service's static folder, resolved: what the deploy takes from the build and how the
/// gateway serves it.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticSettings {
    #[cfg_attr(feature = "schema", schema(value_type = String, example = "dist"))]
    pub dir: StaticDir,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(value_type = String, example = "/"))]
    pub prefix: StaticPrefix,
    /// A path that matches no file and does not look like one (no dot in its last part)
    /// serves the root `index.html`.
    #[serde(default)]
    pub spa: bool,
}

/// A deployment's static folder as the deploy took it from the build's output: what the
/// gateway serves for the deployment while it is live.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticFolder {
    /// The id of its manifest in the server's content-addressed store (`DATA/static`).
    pub manifest: String,
    pub files: u64,
    pub bytes: u64,
    /// The folder in the app (`dist`; `.next/static + public` for a Next.js build).
    pub dir: String,
    #[cfg_attr(feature = "schema", schema(value_type = String, example = "/"))]
    pub prefix: StaticPrefix,
    pub spa: bool,
    /// What was recognised when nothing named a folder (`a dist/ or build/ folder holding
    /// index.html`, `Next.js standalone output`); `null` for a configured one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected: Option<String>,
}

/// The static settings of one source (hoist.toml, the flags), each optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StaticLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<StaticDir>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<StaticPrefix>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spa: Option<bool>,
}

impl StaticLayer {
    pub fn is_empty(&self) -> bool {
        *self == StaticLayer::default()
    }

    /// `stronger`'s settings win, one by one.
    pub fn merge(self, stronger: StaticLayer) -> StaticLayer {
        StaticLayer {
            dir: stronger.dir.or(self.dir),
            prefix: stronger.prefix.or(self.prefix),
            spa: stronger.spa.or(self.spa),
        }
    }

    /// The settings, or `None` when no folder is named. A prefix or `spa` without a folder
    /// is refused: it would silently do nothing.
    pub fn resolve(self) -> Result<Option<StaticSettings>, SpecError> {
        match self.dir {
            Some(dir) => Ok(Some(StaticSettings {
                dir,
                prefix: self.prefix.unwrap_or_default(),
                spa: self.spa.unwrap_or(false),
            })),
            None if self.prefix.is_some() || self.spa.is_some() => Err(SpecError::Missing {
                field: STATIC_FIELD,
                hint: format!(
                    "a static prefix or spa setting needs the folder it is about: set --static DIR or `dir` in hoist.toml's [static] (got {})",
                    echo(&self.describe())
                ),
            }),
            None => Ok(None),
        }
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = &self.prefix {
            parts.push(format!("prefix {p}"));
        }
        if let Some(s) = self.spa {
            parts.push(format!("spa {s}"));
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_normalized_and_stay_inside() {
        assert_eq!(StaticDir::new("dist").unwrap().as_str(), "dist");
        assert_eq!(
            StaticDir::new("./web//build/").unwrap().as_str(),
            "web/build"
        );
        for (bad, rule) in [
            ("../dist", "'..'"),
            ("dist/../../etc", "'..'"),
            ("/srv/dist", "absolute"),
            ("", "not the directory itself"),
            (".", "not the directory itself"),
            ("a\0b", "NUL"),
        ] {
            let e = StaticDir::new(bad).unwrap_err();
            assert_eq!(e.field(), Some("static"), "{bad:?}");
            assert!(e.to_string().contains(rule), "{bad:?}: {e}");
        }
    }

    #[test]
    fn prefixes_start_with_a_slash() {
        assert_eq!(StaticPrefix::new("/").unwrap().as_str(), "/");
        assert_eq!(StaticPrefix::new("/assets/").unwrap().as_str(), "/assets");
        assert_eq!(StaticPrefix::new("//a//b").unwrap().as_str(), "/a/b");
        assert!(StaticPrefix::default().is_root());
        for bad in ["assets", "", "/a/../b", "/a b", "/a?x", "/%2e"] {
            let e = StaticPrefix::new(bad).unwrap_err();
            assert_eq!(e.field(), Some("static_prefix"), "{bad:?}");
        }
        assert!(
            StaticPrefix::new("assets")
                .unwrap_err()
                .to_string()
                .contains("must start with '/'")
        );
    }

    #[test]
    fn layers_merge_and_resolve() {
        let toml = StaticLayer {
            dir: Some(StaticDir::new("dist").unwrap()),
            spa: Some(true),
            ..StaticLayer::default()
        };
        let flags = StaticLayer {
            dir: Some(StaticDir::new("build").unwrap()),
            ..StaticLayer::default()
        };
        let s = toml.merge(flags).resolve().unwrap().unwrap();
        assert_eq!(s.dir.as_str(), "build");
        assert!(s.spa);
        assert!(s.prefix.is_root());
        assert_eq!(StaticLayer::default().resolve().unwrap(), None);
        let lone = StaticLayer {
            spa: Some(true),
            ..StaticLayer::default()
        };
        let e = lone.resolve().unwrap_err();
        assert_eq!(e.field(), Some("static"));
        assert!(e.to_string().contains("--static DIR"), "{e}");
    }

    #[test]
    fn settings_read_older_and_shorter_forms() {
        let s: StaticSettings = serde_json::from_str(r#"{"dir":"dist"}"#).unwrap();
        assert!(s.prefix.is_root() && !s.spa);
        assert!(serde_json::from_str::<StaticSettings>(r#"{"dir":"../x"}"#).is_err());
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"dir":"dist","prefix":"/","spa":false}"#
        );
    }
}
