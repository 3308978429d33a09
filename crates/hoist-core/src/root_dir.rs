use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::{SpecError, echo};

const FIELD: &str = "root_dir";
/// PATH_MAX: a longer root could not be opened anyway.
const MAX_LEN: usize = 4096;

/// The directory inside the repository that holds the app (for monorepos).
///
/// Stored normalized ("a/b", or "" for the repo root) and guaranteed never to escape the checkout,
/// so build code can join it onto the checkout path without re-checking.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
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
        if text.len() > MAX_LEN {
            return Err(SpecError::invalid(
                FIELD,
                text,
                "must be at most 4096 bytes (the longest path Linux opens)",
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

    /// The app directory inside a checkout at `checkout`, checked to be a real directory of
    /// the checkout: no component of the root may be a symlink. `join_onto` alone is lexical,
    /// and a repository holding `srvlink -> /srv` deployed with `--root srvlink` would make the
    /// server read `/srv/hoist.toml` through it.
    ///
    /// A symlink that stays inside the repository is refused too (naming the directory to give
    /// instead): the server's reads and the build's `/app/<root>` inside the sandbox would
    /// otherwise resolve the link against different roots, and an absolute link means a host
    /// path to one and a container path to the other.
    pub fn resolve_in(&self, checkout: &Path) -> Result<PathBuf, SpecError> {
        // Up to 4096 bytes long: each path quoted is cut (crate::echo).
        let refuse = |message: String| SpecError::Root {
            root: echo(&self.to_string()).into_owned(),
            message,
        };
        let mut path = checkout.to_path_buf();
        let mut walked: Vec<&str> = Vec::new();
        for part in self.0.split('/').filter(|p| !p.is_empty()) {
            path.push(part);
            walked.push(part);
            let full = walked.join("/");
            let here = echo(&full);
            // The whole root is the subject when the link is its last component.
            let subject = if full == self.0 {
                String::new()
            } else {
                format!("{here} is ")
            };
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(refuse(format!("{here} does not exist in the repository")));
                }
                Err(e) => return Err(refuse(format!("{here} cannot be read: {e}"))),
            };
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap_or_default();
                return Err(refuse(
                    match inside_target(&walked[..walked.len() - 1], &target) {
                        Some(inner) => {
                            let inner = echo(&inner);
                            format!(
                                "{subject}a symlink to {inner} inside the repository; give --root {inner} instead"
                            )
                        }
                        None => format!("{subject}a symlink to outside the repository"),
                    },
                ));
            }
            if !meta.is_dir() {
                return Err(refuse(format!("{here} is not a directory")));
            }
        }
        if !path.is_dir() {
            return Err(refuse(
                "the repository's checkout is not a directory".into(),
            ));
        }
        Ok(path)
    }

    /// The app directory inside a checkout at `checkout`, lexically: see
    /// [`RootDir::resolve_in`] before reading anything there.
    pub fn join_onto(&self, checkout: &Path) -> PathBuf {
        if self.is_root() {
            checkout.to_path_buf()
        } else {
            checkout.join(&self.0)
        }
    }
}

/// Where a relative symlink in directory `parent` (components from the repository root)
/// points, if that stays inside the repository: "a/b" style. `None` for an absolute target or
/// one that climbs out with `..`.
fn inside_target(parent: &[&str], target: &Path) -> Option<String> {
    if target.is_absolute() {
        return None;
    }
    let mut parts: Vec<String> = parent.iter().map(|p| p.to_string()).collect();
    for part in target.to_str()?.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part.to_string()),
        }
    }
    Some(if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    })
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
    fn a_huge_root_is_refused_and_quoted_short() {
        RootDir::new(&"a/".repeat(2048)).unwrap();
        let err = RootDir::new(&"a".repeat(100_000)).unwrap_err().to_string();
        assert!(
            err.contains("at most 4096 bytes") && err.len() < 300,
            "{err}"
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

    /// A checkout with a real `app/` and links: out to a host directory, to it absolutely, and
    /// within the repository.
    fn checkout(name: &str) -> (PathBuf, PathBuf) {
        let base =
            std::env::temp_dir().join(format!("hoist-root-dir-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let repo = base.join("repo");
        let outside = base.join("outside");
        std::fs::create_dir_all(repo.join("app/inner")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("hoist.toml"), "[env]\nMARK = \"leaked\"\n").unwrap();
        std::fs::write(repo.join("file"), "x").unwrap();
        let link =
            |target: &Path, at: &str| std::os::unix::fs::symlink(target, repo.join(at)).unwrap();
        link(&outside, "srvlink");
        link(Path::new("../outside"), "uplink");
        link(Path::new("app"), "applink");
        link(Path::new("../app/inner"), "app/innerlink");
        (base, repo)
    }

    #[test]
    fn resolves_real_directories() {
        let (base, repo) = checkout("real");
        assert_eq!(RootDir::root().resolve_in(&repo).unwrap(), repo);
        assert_eq!(
            RootDir::new("app/inner")
                .unwrap()
                .resolve_in(&repo)
                .unwrap(),
            repo.join("app/inner")
        );
        std::fs::remove_dir_all(base).unwrap();
    }

    /// The error of resolving `root` in `repo`, as a user reads it.
    fn resolve_err(repo: &Path, root: &str) -> String {
        RootDir::new(root)
            .unwrap()
            .resolve_in(repo)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn refuses_a_symlink_out_of_the_repository() {
        let (base, repo) = checkout("out");
        let err = |root: &str| resolve_err(&repo, root);
        assert_eq!(
            err("srvlink"),
            "--root srvlink: a symlink to outside the repository"
        );
        assert_eq!(
            err("uplink"),
            "--root uplink: a symlink to outside the repository"
        );
        assert_eq!(
            err("srvlink/sub"),
            "--root srvlink/sub: srvlink is a symlink to outside the repository"
        );
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn refuses_a_symlink_inside_the_repository_naming_its_target() {
        let (base, repo) = checkout("in");
        let err = |root: &str| resolve_err(&repo, root);
        assert_eq!(
            err("applink"),
            "--root applink: a symlink to app inside the repository; give --root app instead"
        );
        assert_eq!(
            err("app/innerlink"),
            "--root app/innerlink: a symlink to app/inner inside the repository; give --root app/inner instead"
        );
        assert_eq!(
            err("missing"),
            "--root missing: missing does not exist in the repository"
        );
        assert_eq!(err("file"), "--root file: file is not a directory");
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn link_targets_inside_and_outside() {
        assert_eq!(inside_target(&["a"], Path::new("b")), Some("a/b".into()));
        assert_eq!(
            inside_target(&["a"], Path::new("../b/./c")),
            Some("b/c".into())
        );
        assert_eq!(inside_target(&["a"], Path::new("..")), Some(".".into()));
        assert_eq!(inside_target(&["a"], Path::new("../..")), None);
        assert_eq!(inside_target(&[], Path::new("/srv")), None);
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
