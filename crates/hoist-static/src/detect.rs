//! The static layouts Hoist finds without configuration.

use std::path::{Path, PathBuf};

/// Which build layout was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Vite, Create React App and the like: `dist/` or `build/` holding `index.html`, and no
    /// start command: a static site.
    SpaBuild,
    /// Next.js standalone output: `.next/static` at `/_next/static`, `public/` at `/`; the
    /// app serves the rest.
    NextStandalone,
}

/// A folder (relative to the app's root) served at a url prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub dir: PathBuf,
    pub prefix: String,
}

/// What [`detect`] found: the folders to ingest and where each is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub layout: Layout,
    pub mounts: Vec<Mount>,
}

impl std::fmt::Display for Detected {
    /// The deploy output's line: `static files: dist/ at / (a Vite-style build)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mounts: Vec<String> = self
            .mounts
            .iter()
            .map(|m| format!("{}/ at {}", m.dir.display(), m.prefix))
            .collect();
        let what = match self.layout {
            Layout::SpaBuild => "a single-page app build",
            Layout::NextStandalone => "Next.js standalone output",
        };
        write!(f, "{} ({what})", mounts.join(", "))
    }
}

/// The layouts found without configuration (Vite/CRA `dist/` or `build/` with index.html and
/// no start command; Next.js standalone `.next/static` at `/_next/static` and `public/` at
/// `/`). Reads only the app's own folders, never through a symlink out of `app_root`.
pub fn detect(app_root: &Path, has_start_command: bool) -> Option<Detected> {
    if app_root.join(".next/standalone").is_dir() && is_real_dir(app_root, ".next/static") {
        let mut mounts = Vec::new();
        if is_real_dir(app_root, "public") {
            mounts.push(Mount {
                dir: PathBuf::from("public"),
                prefix: "/".into(),
            });
        }
        mounts.push(Mount {
            dir: PathBuf::from(".next/static"),
            prefix: "/_next/static".into(),
        });
        return Some(Detected {
            layout: Layout::NextStandalone,
            mounts,
        });
    }
    if has_start_command {
        return None;
    }
    ["dist", "build"].into_iter().find_map(|dir| {
        let index = app_root.join(dir).join("index.html");
        (is_real_dir(app_root, dir) && index.is_file()).then(|| Detected {
            layout: Layout::SpaBuild,
            mounts: vec![Mount {
                dir: PathBuf::from(dir),
                prefix: "/".into(),
            }],
        })
    })
}

/// A directory under `root` that is not a symlink (a symlinked `dist -> /` must not be
/// detected as the app's static folder).
fn is_real_dir(root: &Path, rel: &str) -> bool {
    let mut path = root.to_owned();
    for part in rel.split('/') {
        path.push(part);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::Scratch;

    #[test]
    fn spa_builds_are_found_only_without_a_start_command() {
        let s = Scratch::new("detect-spa");
        s.write("dist/index.html", "<p>");
        let found = detect(s.path(), false).expect("dist");
        assert_eq!(found.layout, Layout::SpaBuild);
        assert_eq!(
            found.mounts,
            [Mount {
                dir: "dist".into(),
                prefix: "/".into()
            }]
        );
        assert_eq!(found.to_string(), "dist/ at / (a single-page app build)");
        assert_eq!(detect(s.path(), true), None, "an app that serves itself");
        let cra = Scratch::new("detect-cra");
        cra.write("build/index.html", "<p>");
        assert_eq!(
            detect(cra.path(), false).expect("build").mounts[0].dir,
            PathBuf::from("build")
        );
        let none = Scratch::new("detect-none");
        none.write("dist/app.js", "x");
        assert_eq!(detect(none.path(), false), None, "no index.html");
    }

    #[test]
    fn next_standalone_mounts_its_static_folder_and_public() {
        let s = Scratch::new("detect-next");
        s.write(".next/standalone/server.js", "x");
        s.write(".next/static/chunks/main-8e3f1c2a5b6d7e8f.js", "x");
        s.write("public/favicon.ico", "x");
        let found = detect(s.path(), true).expect("next");
        assert_eq!(found.layout, Layout::NextStandalone);
        assert_eq!(
            found.mounts,
            [
                Mount {
                    dir: "public".into(),
                    prefix: "/".into()
                },
                Mount {
                    dir: ".next/static".into(),
                    prefix: "/_next/static".into()
                },
            ]
        );
    }

    #[test]
    fn a_symlinked_folder_is_not_detected() {
        let s = Scratch::new("detect-link");
        s.write("elsewhere/index.html", "<p>");
        std::os::unix::fs::symlink(s.path().join("elsewhere"), s.path().join("dist")).unwrap();
        assert_eq!(detect(s.path(), false), None);
    }
}
