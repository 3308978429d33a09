//! Runtimes are Debian root filesystems built once with mmdebstrap and then shared read-only by
//! every build and instance as the bottom overlay layer. The cache directory may be shared by
//! several servers (the test suite does this), so building takes a file lock and publishes the
//! result with an atomic rename.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use hoist_core::Runtime;
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::{BuildError, LogSink, OutputStream};

const SUITE: &str = "bookworm";

#[derive(Debug, Clone)]
pub struct Runtimes {
    dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct RuntimeImage {
    pub runtime: Runtime,
    pub rootfs: PathBuf,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeInfo {
    pub name: String,
    pub installed: bool,
    pub version: Option<String>,
    pub size_bytes: Option<u64>,
    pub packages: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    version: String,
    size_bytes: u64,
    build_seconds: f64,
}

/// The Debian packages that make each runtime, and the package whose version names it.
fn packages(rt: Runtime) -> (&'static [&'static str], &'static str) {
    match rt {
        Runtime::Python => (
            &["python3", "python3-pip", "python3-venv", "ca-certificates"],
            "python3",
        ),
        Runtime::Node => (&["nodejs", "npm", "ca-certificates"], "nodejs"),
        Runtime::Go => (&["golang-go", "git", "ca-certificates"], "golang-go"),
        Runtime::Rust => (
            &[
                "rustc-web",
                "cargo-web",
                "gcc",
                "libc6-dev",
                "git",
                "ca-certificates",
            ],
            "rustc-web",
        ),
        Runtime::Debian => (&["ca-certificates"], "base-files"),
    }
}

/// Run inside the new root filesystem (as `$1`) before it is published.
fn customize(rt: Runtime) -> &'static str {
    match rt {
        // Debian's Python refuses system-wide `pip install` (PEP 668). In a container image
        // the system *is* the app's environment, so the plain `pip install -r
        // requirements.txt` users write must work and put console scripts (gunicorn,
        // uvicorn) in /usr/local/bin, which is on PATH.
        Runtime::Python => "rm -f \"$1\"/usr/lib/python3*/EXTERNALLY-MANAGED",
        _ => "true",
    }
}

impl Runtimes {
    pub fn new(dir: impl Into<PathBuf>) -> Runtimes {
        Runtimes { dir: dir.into() }
    }

    fn rootfs(&self, rt: Runtime) -> PathBuf {
        self.dir.join(rt.as_str()).join("rootfs")
    }

    fn meta_path(&self, rt: Runtime) -> PathBuf {
        self.dir.join(rt.as_str()).join("meta.json")
    }

    fn read_meta(&self, rt: Runtime) -> Option<Meta> {
        let text = std::fs::read_to_string(self.meta_path(rt)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn list(&self) -> Vec<RuntimeInfo> {
        Runtime::ALL
            .iter()
            .map(|&rt| {
                let meta = self.read_meta(rt);
                RuntimeInfo {
                    name: rt.as_str().to_string(),
                    installed: meta.is_some(),
                    version: meta.as_ref().map(|m| m.version.clone()),
                    size_bytes: meta.as_ref().map(|m| m.size_bytes),
                    packages: packages(rt).0.iter().map(|s| s.to_string()).collect(),
                }
            })
            .collect()
    }

    /// Returns the runtime, building it first if this cache has never had it.
    pub async fn ensure(&self, rt: Runtime, log: &LogSink) -> Result<RuntimeImage, BuildError> {
        if let Some(meta) = self.read_meta(rt) {
            ensure_mount_points(&self.rootfs(rt))?;
            return Ok(RuntimeImage {
                runtime: rt,
                rootfs: self.rootfs(rt),
                version: meta.version,
            });
        }
        let dir = self.dir.join(rt.as_str());
        std::fs::create_dir_all(&dir)
            .map_err(BuildError::io(format!("creating {}", dir.display())))?;
        let lock_path = self.dir.join(format!("{}.lock", rt.as_str()));
        let lock = std::fs::File::create(&lock_path)
            .map_err(BuildError::io(format!("creating {}", lock_path.display())))?;
        log(
            OutputStream::System,
            format!("waiting for the {} runtime lock", rt.as_str()),
        );
        let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
            .await
            .map_err(|e| BuildError::io("locking the runtime cache")(std::io::Error::other(e)))?
            .map_err(BuildError::io("locking the runtime cache"))?;
        // Somebody else may have built it while we waited for the lock.
        if let Some(meta) = self.read_meta(rt) {
            drop(lock);
            return Ok(RuntimeImage {
                runtime: rt,
                rootfs: self.rootfs(rt),
                version: meta.version,
            });
        }
        let result = self.build(rt, &dir, log).await;
        drop(lock);
        result
    }

    async fn build(
        &self,
        rt: Runtime,
        dir: &Path,
        log: &LogSink,
    ) -> Result<RuntimeImage, BuildError> {
        let started = Instant::now();
        let (pkgs, version_pkg) = packages(rt);
        let tmp = dir.join("rootfs.tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)
                .map_err(BuildError::io(format!("removing {}", tmp.display())))?;
        }
        log(
            OutputStream::System,
            format!(
                "building runtime {} from Debian {SUITE} packages: {} (once per runtime cache)",
                rt.as_str(),
                pkgs.join(", ")
            ),
        );
        let fail = |message: String| BuildError::Runtime {
            runtime: rt.as_str().to_string(),
            message,
        };
        let mut child = Command::new("mmdebstrap")
            .arg("--variant=apt")
            .arg(format!("--include={}", pkgs.join(",")))
            // Documentation and translations are dead weight in an image.
            .arg("--dpkgopt=path-exclude=/usr/share/man/*")
            .arg("--dpkgopt=path-exclude=/usr/share/doc/*")
            .arg("--dpkgopt=path-include=/usr/share/doc/*/copyright")
            .arg("--dpkgopt=path-exclude=/usr/share/locale/*")
            .arg(format!("--customize-hook={}", customize(rt)))
            .arg(SUITE)
            .arg(&tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("cannot run mmdebstrap ({e}); run scripts/setup.sh")))?;
        let mut tail: Vec<String> = Vec::new();
        if let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) {
            let mut lines = crate::merge_lines(out, err);
            while let Some((_, l)) = lines.recv().await {
                // mmdebstrap's "I:" lines are the visible progress of this step.
                if l.starts_with("I:") || l.starts_with("E:") || l.starts_with("W:") {
                    log(
                        OutputStream::System,
                        format!("runtime {}: {l}", rt.as_str()),
                    );
                }
                tail.push(l);
                if tail.len() > 20 {
                    tail.remove(0);
                }
            }
        }
        let status = child
            .wait()
            .await
            .map_err(|e| fail(format!("waiting for mmdebstrap: {e}")))?;
        if !status.success() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(fail(format!("mmdebstrap {status}: {}", tail.join(" | "))));
        }
        ensure_mount_points(&tmp)?;
        let version = dpkg_version(&tmp, version_pkg)
            .await
            .unwrap_or_else(|| "unknown".into());
        let size_bytes = dir_size(&tmp);
        let final_path = self.rootfs(rt);
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
        };
        let meta_json = serde_json::to_string_pretty(&meta)
            .map_err(|e| fail(format!("encoding runtime metadata: {e}")))?;
        // meta.json is written last: its presence is what marks the runtime complete.
        let meta_tmp = dir.join("meta.json.tmp");
        std::fs::write(&meta_tmp, meta_json)
            .map_err(BuildError::io(format!("writing {}", meta_tmp.display())))?;
        std::fs::rename(&meta_tmp, self.meta_path(rt))
            .map_err(BuildError::io("publishing runtime metadata"))?;
        log(
            OutputStream::System,
            format!(
                "runtime {} {version} ready ({} MB, {:.1}s)",
                rt.as_str(),
                size_bytes / 1_000_000,
                meta.build_seconds
            ),
        );
        Ok(RuntimeImage {
            runtime: rt,
            rootfs: final_path,
            version,
        })
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

async fn dpkg_version(root: &Path, pkg: &str) -> Option<String> {
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
