//! The walk of a static folder: what is in it, by url path, without following anything out.

use std::ffi::OsStr;
use std::fs::Metadata;
use std::path::{Path, PathBuf};

use crate::StaticError;
use crate::manifest::{SkipReason, Skipped};

/// A regular file found by the walk. `source` is what to read: the file itself, or for a
/// symlink the canonical target inside the folder.
pub(crate) struct Found {
    pub url_path: String,
    pub source: PathBuf,
    pub meta: Metadata,
}

pub(crate) struct Walk {
    /// The files found, up to the walk's `keep` (past it they are counted, not kept).
    pub files: Vec<Found>,
    /// How many regular files the folder holds (also past `keep`).
    pub count: u64,
    pub skipped: Vec<Skipped>,
    pub bytes: u64,
}

/// Lists `dir`'s files. Symlinks are never followed by the walk itself: one whose canonical
/// target is a regular file inside `dir` is served with the target's content (build tools
/// link `index.html` to a variant, pnpm links assets); one pointing outside, dangling, or to a
/// directory is skipped and reported. Names that are not UTF-8 or hold a control byte or a
/// backslash are skipped and reported: no url path could name them unambiguously.
///
/// At most `keep` files are kept in memory: a folder of millions of files (over any limit)
/// is counted, so that its refusal can say how many, without holding a record of each.
pub(crate) fn walk(dir: &Path, keep: u64) -> Result<Walk, StaticError> {
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StaticError::Missing {
                path: dir.to_owned(),
            });
        }
        Err(e) => return Err(StaticError::io(dir)(e)),
    };
    if !meta.is_dir() {
        return Err(StaticError::NotADirectory {
            path: dir.to_owned(),
        });
    }
    // The folder itself may be reached through a symlink (`dist -> build/out`); everything
    // under it is judged against its canonical form.
    let root = dir.canonicalize().map_err(StaticError::io(dir))?;
    let mut out = Walk {
        files: Vec::new(),
        count: 0,
        skipped: Vec::new(),
        bytes: 0,
    };
    let found = |out: &mut Walk, file: Found| {
        out.count += 1;
        out.bytes += file.meta.len();
        if out.count <= keep {
            out.files.push(file);
        }
    };
    let mut stack: Vec<(PathBuf, String)> = vec![(root.clone(), String::new())];
    while let Some((path, url)) = stack.pop() {
        let entries = std::fs::read_dir(&path).map_err(StaticError::io(&path))?;
        for entry in entries {
            let entry = entry.map_err(StaticError::io(&path))?;
            let name = entry.file_name();
            let shown = format!("{}/{}", url, name.to_string_lossy());
            let shown = shown.trim_start_matches('/').to_owned();
            let Some(name) = url_segment(&name) else {
                out.skipped.push(Skipped {
                    path: shown,
                    reason: SkipReason::OddName,
                });
                continue;
            };
            let child_url = format!("{url}/{name}");
            let child = entry.path();
            let meta = std::fs::symlink_metadata(&child).map_err(StaticError::io(&child))?;
            let kind = meta.file_type();
            if kind.is_dir() {
                stack.push((child, child_url));
            } else if kind.is_file() {
                found(
                    &mut out,
                    Found {
                        url_path: child_url,
                        source: child,
                        meta,
                    },
                );
            } else if kind.is_symlink() {
                match resolve_inside(&root, &child) {
                    Ok((target, meta)) => found(
                        &mut out,
                        Found {
                            url_path: child_url,
                            source: target,
                            meta,
                        },
                    ),
                    Err(reason) => out.skipped.push(Skipped {
                        path: shown,
                        reason,
                    }),
                }
            } else {
                out.skipped.push(Skipped {
                    path: shown,
                    reason: SkipReason::NotAFile,
                });
            }
        }
    }
    Ok(out)
}

/// A name usable as one url path segment, or None. `.` and `..` never come out of
/// `read_dir`, but a segment must also not be empty or contain `/`, which no file name can.
fn url_segment(name: &OsStr) -> Option<&str> {
    let name = name.to_str()?;
    if name.is_empty()
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c.is_control() || c == '\\' || c == '/')
    {
        return None;
    }
    Some(name)
}

/// The canonical target of a symlink when it is a regular file inside `root`.
fn resolve_inside(root: &Path, link: &Path) -> Result<(PathBuf, Metadata), SkipReason> {
    let target = link
        .canonicalize()
        .map_err(|_| SkipReason::SymlinkOutside)?;
    if !target.starts_with(root) {
        return Err(SkipReason::SymlinkOutside);
    }
    let meta = std::fs::metadata(&target).map_err(|_| SkipReason::SymlinkOutside)?;
    if meta.is_dir() {
        return Err(SkipReason::SymlinkToDirectory);
    }
    if !meta.is_file() {
        return Err(SkipReason::NotAFile);
    }
    Ok((target, meta))
}
