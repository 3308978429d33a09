//! The static step's parts that need no platform: the platform's static store and limits,
//! the checks of a configured folder in the built app, ingesting the folders with the limits
//! over all of them, and the refusals in the deploy's words.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hoist_core::{RootDir, echo, size_text};
use hoist_static::{Limits, Manifest, ManifestId, StaticError};

/// Names listed when a static folder is missing: enough to spot `build/` beside `dist/`.
pub(crate) const LISTED: usize = 20;
/// Files left out by an ingest that are named in the deploy output; the rest are counted.
pub(crate) const SKIPS_LISTED: usize = 10;

/// The platform's part of static files: the store shared by every deployment, the limits of
/// one folder and how long a replaced deployment's files keep answering.
pub(crate) struct StaticFiles {
    pub(crate) store: Arc<hoist_static::Store>,
    pub(crate) limits: Limits,
    pub(crate) grace: Duration,
}

/// Why a deploy's static step failed; the deployment fails with it, the live one keeps
/// serving.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StaticStepError(pub(crate) String);

/// What the step took from the build (recorded on the deployment): the manifest, kept for
/// the switch.
pub(crate) struct Taken {
    pub(crate) manifest: Arc<Manifest>,
}

/// One folder to take and where the site serves it.
pub(crate) struct Source {
    /// As the user sees it: `dist`.
    pub(crate) label: String,
    /// Relative to the app's root directory.
    pub(crate) rel: PathBuf,
    /// Where its files are mounted inside the site (`/` for the folder itself, `/_next/static`
    /// for Next.js's build assets).
    pub(crate) mount: String,
}

pub(crate) fn load(store: &hoist_static::Store, id: &str) -> Result<Manifest, StaticError> {
    let id: ManifestId = id.parse()?;
    store.load_manifest(&id)
}

/// `--static dist` must be a real folder of the built app, reached through no symlink: the
/// ingest reads it on the host, where a link would mean a host path.
pub(crate) fn check_folder(
    app_root: &Path,
    dir: &str,
    root: &RootDir,
) -> Result<(), StaticStepError> {
    let mut path = app_root.to_path_buf();
    let mut walked = Vec::new();
    for part in dir.split('/') {
        path.push(part);
        walked.push(part);
        let here = echo(&walked.join("/")).into_owned();
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(StaticStepError(format!(
                    "--static {dir}: {here} is a symlink in the build's output; name the folder itself"
                )));
            }
            Ok(m) if !m.is_dir() => {
                return Err(StaticStepError(format!(
                    "--static {dir}: {here} is not a folder after the build"
                )));
            }
            Ok(_) => {}
            Err(_) => {
                let parent = path.parent().unwrap_or(app_root);
                let inside = if walked.len() == 1 {
                    if root.is_root() {
                        "the app's root directory".to_string()
                    } else {
                        format!("the app's root directory ({root})")
                    }
                } else {
                    format!("{}/", walked[..walked.len() - 1].join("/"))
                };
                return Err(StaticStepError(format!(
                    "--static {dir}: no such folder after the build; {inside} holds {}",
                    listing(parent)
                )));
            }
        }
    }
    Ok(())
}

/// `app.py, build/, requirements.txt` (folders with a slash), sorted, at most [`LISTED`].
fn listing(dir: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return "nothing readable".into();
    };
    let mut names: Vec<String> = entries
        .flatten()
        // Overlay whiteouts (files the build deleted) are character devices: not there.
        .filter(|e| {
            e.file_type()
                .is_ok_and(|t| t.is_dir() || t.is_file() || t.is_symlink())
        })
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                format!("{name}/")
            } else {
                name
            }
        })
        .collect();
    if names.is_empty() {
        return "nothing".into();
    }
    names.sort();
    let more = names.len().saturating_sub(LISTED);
    names.truncate(LISTED);
    let mut text = names
        .iter()
        .map(|n| echo(n).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

/// Ingests each folder and mounts it where the site serves it; the limits hold for all of
/// them together.
pub(crate) fn ingest_all(
    store: &hoist_static::Store,
    dirs: &[(String, PathBuf, String)],
    limits: &Limits,
) -> Result<Manifest, StaticStepError> {
    let mut all = Manifest::default();
    let mut left = *limits;
    for (label, path, mount) in dirs {
        let one = store
            .ingest(path, &left)
            .map_err(|e| refusal(label, e, limits))?;
        left.max_files = left.max_files.saturating_sub(one.files() as u64);
        left.max_bytes = left.max_bytes.saturating_sub(one.bytes());
        all.merge_at(mount, one);
    }
    Ok(all)
}

/// The ingest's refusal in the deploy's words: the folder as the user named it, and for the
/// limits the numbers found and allowed (never the server's own paths).
fn refusal(label: &str, e: StaticError, limits: &Limits) -> StaticStepError {
    StaticStepError(match e {
        StaticError::TooManyFiles { found, .. } => format!(
            "static folder {label}/ holds {found} files, over the limit of {} files",
            limits.max_files
        ),
        StaticError::TooManyBytes { found, .. } => format!(
            "static folder {label}/ holds {found} bytes ({}), over the limit of {} bytes ({})",
            size_text(found),
            limits.max_bytes,
            size_text(limits.max_bytes)
        ),
        StaticError::Missing { .. } => format!("static folder {label}/ does not exist"),
        StaticError::NotADirectory { .. } => format!("static folder {label}/ is not a folder"),
        other => format!("static folder {label}/: {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("hoist-static-step-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_missing_folder_says_what_the_build_left() {
        let app = tmp("missing");
        std::fs::create_dir_all(app.join("build")).unwrap();
        std::fs::write(app.join("app.py"), "").unwrap();
        let e = check_folder(&app, "dist", &RootDir::root()).unwrap_err();
        assert_eq!(
            e.0,
            "--static dist: no such folder after the build; the app's root directory holds app.py, build/"
        );
        let e = check_folder(&app, "build/out", &RootDir::root()).unwrap_err();
        assert!(e.0.contains("build/ holds nothing"), "{}", e.0);
        std::os::unix::fs::symlink("/etc", app.join("dist")).unwrap();
        let e = check_folder(&app, "dist", &RootDir::root()).unwrap_err();
        assert!(e.0.contains("dist is a symlink"), "{}", e.0);
        check_folder(&app, "build", &RootDir::root()).unwrap();
        let _ = std::fs::remove_dir_all(&app);
    }

    #[test]
    fn the_limits_are_refused_with_the_numbers() {
        let app = tmp("limits");
        std::fs::create_dir_all(app.join("dist")).unwrap();
        std::fs::write(app.join("dist/a.js"), "a".repeat(100)).unwrap();
        std::fs::write(app.join("dist/b.js"), "b".repeat(100)).unwrap();
        let store = hoist_static::Store::open(app.join("store")).unwrap();
        let dirs = [("dist".to_string(), app.join("dist"), "/".to_string())];
        let files = Limits {
            max_files: 1,
            max_bytes: 1 << 30,
        };
        let e = ingest_all(&store, &dirs, &files).err().unwrap();
        assert_eq!(
            e.0,
            "static folder dist/ holds 2 files, over the limit of 1 files"
        );
        let bytes = Limits {
            max_files: 10,
            max_bytes: 150,
        };
        let e = ingest_all(&store, &dirs, &bytes).err().unwrap();
        assert!(
            e.0.starts_with(
                "static folder dist/ holds 200 bytes (200 B), over the limit of 150 bytes"
            ),
            "{}",
            e.0
        );
        let m = ingest_all(&store, &dirs, &Limits::default()).unwrap();
        assert_eq!((m.files(), m.bytes(), m.new_files()), (2, 200, 2));
        // The same folder again: every file is in the store already.
        let again = ingest_all(&store, &dirs, &Limits::default()).unwrap();
        assert_eq!(again.new_files(), 0);
        let _ = std::fs::remove_dir_all(&app);
    }
}
