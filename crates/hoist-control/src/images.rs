//! The app images on disk: one directory per layer digest under `DATA/layers`, shared by the
//! deployments built to the same digest. Only the path scheme and the removal live here; which
//! images a service keeps is the switch's decision (see `collect_images`).

use std::path::{Path, PathBuf};

pub(crate) struct Images {
    dir: PathBuf,
}

impl Images {
    pub(crate) fn new(data_dir: &Path) -> Images {
        Images {
            dir: data_dir.join("layers"),
        }
    }

    /// Where the layer of `digest` is (`sha256:…` becomes `sha256-…`).
    pub(crate) fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(digest.replace(':', "-"))
    }

    /// Removes the layer of `digest` (gone already is fine).
    pub(crate) async fn remove(&self, digest: &str) {
        let path = self.path(digest);
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(path)).await;
    }
}
