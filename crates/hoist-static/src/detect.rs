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
