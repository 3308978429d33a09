//! App layers are the upper dirs of builds, stored under the digest of their contents, so two
//! builds that produce the same files share one layer.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::BuildError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppLayer {
    /// `sha256:<hex>`
    pub digest: String,
    pub path: PathBuf,
}

/// Hashes a directory tree: paths, types, modes, owners, file contents, link targets and
/// device numbers (overlayfs whiteouts are 0:0 character devices and must count).
pub fn digest_dir(root: &Path) -> Result<String, BuildError> {
    let mut hasher = Sha256::new();
    walk(root, Path::new(""), &mut hasher)?;
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

fn walk(root: &Path, rel: &Path, h: &mut Sha256) -> Result<(), BuildError> {
    let dir = root.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(BuildError::io(format!("reading {}", dir.display())))?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    entries.sort();
    for name in entries {
        let rel_path = rel.join(&name);
        let full = root.join(&rel_path);
        let meta = std::fs::symlink_metadata(&full)
            .map_err(BuildError::io(format!("reading {}", full.display())))?;
        let ft = meta.file_type();
        h.update(rel_path.as_os_str().as_encoded_bytes());
        h.update([0]);
        h.update(meta.mode().to_le_bytes());
        h.update(meta.uid().to_le_bytes());
        h.update(meta.gid().to_le_bytes());
        if ft.is_dir() {
            h.update(b"d");
            walk(root, &rel_path, h)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&full)
                .map_err(BuildError::io(format!("reading link {}", full.display())))?;
            h.update(b"l");
            h.update(target.as_os_str().as_encoded_bytes());
        } else if ft.is_file() {
            h.update(b"f");
            h.update(meta.len().to_le_bytes());
            let mut f = std::fs::File::open(&full)
                .map_err(BuildError::io(format!("opening {}", full.display())))?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = f
                    .read(&mut buf)
                    .map_err(BuildError::io(format!("reading {}", full.display())))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        } else if ft.is_char_device() || ft.is_block_device() {
            h.update(b"c");
            h.update(meta.rdev().to_le_bytes());
        } else {
            h.update(b"o");
        }
        h.update([0xff]);
    }
    Ok(())
}

/// Moves `upper` into `layers_dir` under its digest; if that layer exists already, the new
/// copy is dropped.
pub fn store_layer(upper: &Path, layers_dir: &Path) -> Result<AppLayer, BuildError> {
    let digest = digest_dir(upper)?;
    let path = layers_dir.join(digest.replace(':', "-"));
    std::fs::create_dir_all(layers_dir)
        .map_err(BuildError::io(format!("creating {}", layers_dir.display())))?;
    if path.exists() {
        std::fs::remove_dir_all(upper)
            .map_err(BuildError::io(format!("removing {}", upper.display())))?;
    } else {
        std::fs::rename(upper, &path)
            .map_err(BuildError::io(format!("storing layer {}", path.display())))?;
    }
    Ok(AppLayer { digest, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_depends_on_content_and_names_not_on_creation_order() -> Result<(), BuildError> {
        let base = std::env::temp_dir().join(format!("hoist-layer-test-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        for d in [&a, &b] {
            std::fs::create_dir_all(d.join("app")).map_err(BuildError::io("mkdir"))?;
        }
        std::fs::write(a.join("app/x"), "1").map_err(BuildError::io("w"))?;
        std::fs::write(a.join("app/y"), "2").map_err(BuildError::io("w"))?;
        std::fs::write(b.join("app/y"), "2").map_err(BuildError::io("w"))?;
        std::fs::write(b.join("app/x"), "1").map_err(BuildError::io("w"))?;
        assert_eq!(digest_dir(&a)?, digest_dir(&b)?);
        std::fs::write(b.join("app/x"), "changed").map_err(BuildError::io("w"))?;
        assert_ne!(digest_dir(&a)?, digest_dir(&b)?);
        let _ = std::fs::remove_dir_all(&base);
        Ok(())
    }
}
