//! Running a build: the fetched tree is the start of an overlay upper dir over the runtime, the
//! build command runs with bash in a sandbox on that overlay, and whatever the upper dir holds
//! afterwards is the deployment's app layer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hoist_sandbox::{BindMount, LaunchSpec, Privileges, ProcessSpec, Sandboxes};
use tokio_util::sync::CancellationToken;

use crate::layer::{AppLayer, store_layer};
use crate::runtimes::RuntimeImage;
use crate::{BuildError, LogSink, OutputStream, merge_lines};

/// The CA bundle every sandbox has (the host's), for Node.js builds that bundle their own.
pub const NODE_EXTRA_CA_CERTS: &str = "NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt";

/// Builds get the reference platform's "Hobby" build worker: 2 vCPUs and 4 GB.
const BUILD_MEMORY_MB: u64 = 4096;
const BUILD_MILLICORES: u32 = 2000;

#[derive(Debug)]
pub struct Builder {
    sandboxes: Arc<Sandboxes>,
    work_dir: PathBuf,
    layers_dir: PathBuf,
    /// Package caches, one set per service and runtime: `caches/<service>/<runtime>/<tool>`.
    /// A cache is code the next build runs, so one tenant's build must never see another's.
    cache_dir: PathBuf,
    /// Where caches shared by every service lived before they were per service.
    legacy_cache_dir: PathBuf,
}

pub struct BuildRequest {
    /// Used for the sandbox and work directory names; unique per build.
    pub id: String,
    /// Whose package caches the build gets: a service's builds share them, no one else does.
    pub service: hoist_core::ServiceName,
    pub runtime: RuntimeImage,
    /// The fetched tree, as returned by [`Builder::source_dir`].
    pub root_dir: String,
    pub build_command: Option<String>,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub cancel: CancellationToken,
}

#[derive(Debug, Clone)]
pub struct BuildOutput {
    pub layer: AppLayer,
}

impl Builder {
    pub fn new(sandboxes: Arc<Sandboxes>, data_dir: &Path) -> Builder {
        Builder {
            sandboxes,
            work_dir: data_dir.join("builds"),
            layers_dir: data_dir.join("layers"),
            cache_dir: data_dir.join("caches"),
            legacy_cache_dir: data_dir.join("build-cache"),
        }
    }

    fn upper(&self, id: &str) -> PathBuf {
        self.work_dir.join(id).join("upper")
    }

    /// Where the source must be fetched to for build `id`: `/app` of the image.
    pub fn source_dir(&self, id: &str) -> PathBuf {
        self.upper(id).join("app")
    }

    /// Removes build work directories left by an interrupted run, caches of deleted services
    /// that could not be removed at once, and the old caches every service shared (anyone may
    /// have written into those).
    pub fn remove_stale(&self) {
        let _ = std::fs::remove_dir_all(&self.work_dir);
        let _ = std::fs::remove_dir_all(&self.legacy_cache_dir);
        if let Ok(entries) = std::fs::read_dir(&self.cache_dir) {
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(DELETED_PREFIX)
                {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }

    fn service_caches(&self, service: &hoist_core::ServiceName) -> PathBuf {
        self.cache_dir.join(service.as_str())
    }

    /// Removes a deleted service's package caches, so a later service of the same name starts
    /// with none. A build of it still winding down may write into them meanwhile, so they are
    /// first moved aside (the name is free at once) and removed from there; what cannot be
    /// removed now goes at the next start.
    pub async fn remove_caches(&self, service: &hoist_core::ServiceName) -> Result<(), BuildError> {
        let dir = self.service_caches(service);
        if std::fs::symlink_metadata(&dir).is_err() {
            return Ok(());
        }
        let aside = self.cache_dir.join(format!(
            "{DELETED_PREFIX}{}-{}",
            service.as_str(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::rename(&dir, &aside)
            .map_err(BuildError::io(format!("moving {} aside", dir.display())))?;
        let context = format!("removing {}", aside.display());
        tokio::task::spawn_blocking(move || std::fs::remove_dir_all(aside))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(BuildError::io(context))
    }

    pub fn discard(&self, id: &str) {
        let _ = std::fs::remove_dir_all(self.work_dir.join(id));
    }

    pub async fn build(&self, req: BuildRequest, log: &LogSink) -> Result<BuildOutput, BuildError> {
        let result = self.run(&req, log).await;
        self.discard(&req.id);
        result
    }

    async fn run(&self, req: &BuildRequest, log: &LogSink) -> Result<BuildOutput, BuildError> {
        let upper = self.upper(&req.id);
        // Not `is_dir()`: it follows symlinks, and this runs on the host, where a root that
        // is a link would be checked (and, by the directory listing, read) against a host
        // directory. Inside the sandbox `/app/<root>` resolves in the container's own root.
        hoist_core::RootDir::new(&req.root_dir)?.resolve_in(&upper.join("app"))?;
        if let Some(command) = req.build_command.as_deref() {
            self.run_command(req, command, &upper, log).await?;
            prune(&upper);
        } else {
            log(
                OutputStream::System,
                "no build command: the image is the source tree".into(),
            );
        }
        log(OutputStream::System, "storing the app layer".into());
        let layers_dir = self.layers_dir.clone();
        let layer = tokio::task::spawn_blocking(move || store_layer(&upper, &layers_dir))
            .await
            .map_err(|e| BuildError::io("storing the app layer")(std::io::Error::other(e)))??;
        log(OutputStream::System, format!("app layer {}", layer.digest));
        Ok(BuildOutput { layer })
    }

    async fn run_command(
        &self,
        req: &BuildRequest,
        command: &str,
        upper: &Path,
        log: &LogSink,
    ) -> Result<(), BuildError> {
        // Per family, not per version: a package cache serves every version of its tool.
        let caches = self
            .service_caches(&req.service)
            .join(req.runtime.entry.family.as_str());
        // Package caches speed up the service's next build but are not part of the image.
        let cache_mounts = [
            ("pip", "/root/.cache/pip"),
            ("npm", "/root/.npm"),
            ("go-mod", "/root/go/pkg/mod"),
            ("go-build", "/root/.cache/go-build"),
            ("cargo-registry", "/root/.cargo/registry"),
            ("cargo-git", "/root/.cargo/git"),
        ];
        let mut binds = Vec::new();
        for (name, dest) in cache_mounts {
            let src = caches.join(name);
            std::fs::create_dir_all(&src)
                .map_err(BuildError::io(format!("creating {}", src.display())))?;
            binds.push(BindMount {
                source: src,
                destination: dest.into(),
                readonly: false,
            });
        }
        let mut env = vec![
            "PATH=/root/.cargo/bin:/root/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            "HOME=/root".into(),
            "LANG=C.UTF-8".into(),
            "CI=true".into(),
            "DEBIAN_FRONTEND=noninteractive".into(),
            "PIP_ROOT_USER_ACTION=ignore".into(),
            "PIP_DISABLE_PIP_VERSION_CHECK=1".into(),
            "npm_config_update_notifier=false".into(),
            "npm_config_fund=false".into(),
            // Node.js from the npm registry trusts only its own bundled CAs, so `npm install`
            // behind a TLS-inspecting proxy would fail where Debian's node (which reads the
            // system store) works: give it the host's bundle, mounted at this path.
            NODE_EXTRA_CA_CERTS.into(),
        ];
        env.extend(req.env.iter().map(|(k, v)| format!("{k}={v}")));
        let work = self.work_dir.join(&req.id).join("work");
        let spec = LaunchSpec {
            hostname: "build".into(),
            layers: vec![req.runtime.rootfs.clone()],
            upper: Some((upper.to_path_buf(), work)),
            process: ProcessSpec {
                // -e: a multi-line build stops at the first failing line, as a CI job would.
                args: vec!["bash".into(), "-e".into(), "-c".into(), command.to_string()],
                env,
                cwd: Path::new("/app").join(&req.root_dir).display().to_string(),
            },
            memory_mb: BUILD_MEMORY_MB,
            cpu_millicores: BUILD_MILLICORES,
            pids_limit: 8192,
            tmp_size_mb: 2048,
            privileges: Privileges::Build,
            binds,
        };
        log(
            OutputStream::System,
            format!(
                "running build command on runtime {} {}",
                req.runtime.entry.name(),
                req.runtime.version
            ),
        );
        let launched = self.sandboxes.launch(&req.id, spec).await?;
        let mut sandbox = launched.sandbox;
        let mut lines = merge_lines(launched.stdout, launched.stderr);
        let pump = async {
            while let Some((stream, line)) = lines.recv().await {
                log(stream, line);
            }
        };
        let outcome = tokio::select! {
            exit = async { pump.await; sandbox.wait().await } => Ok(exit),
            _ = tokio::time::sleep(req.timeout) => Err(BuildError::TimedOut(req.timeout)),
            _ = req.cancel.cancelled() => Err(BuildError::Cancelled),
        };
        match outcome {
            Ok(exit) => {
                sandbox.destroy().await;
                if exit.status.success() {
                    Ok(())
                } else {
                    Err(BuildError::CommandFailed(exit.to_string()))
                }
            }
            Err(e) => {
                sandbox.destroy().await;
                Err(e)
            }
        }
    }
}

/// Names under `caches/` that are not a service's: a deleted service's caches being removed.
/// Service names start with a letter, so none can take this form.
const DELETED_PREFIX: &str = ".deleted-";

/// apt's downloaded lists and packages are build leftovers, not part of the image. This runs
/// on the host over a tree the build wrote, so nothing is followed through a symlink: a build
/// could otherwise point `var/lib/apt/lists` at a host directory and have us empty it.
fn prune(upper: &Path) {
    for dir in [
        "var",
        "var/lib",
        "var/lib/apt",
        "var/cache",
        "var/cache/apt",
    ] {
        let is_real_dir = std::fs::symlink_metadata(upper.join(dir)).is_ok_and(|m| m.is_dir());
        if !is_real_dir {
            return;
        }
    }
    for dir in ["var/lib/apt/lists", "var/cache/apt/archives"] {
        let path = upper.join(dir);
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        if let Ok(entries) = std::fs::read_dir(&path) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_file()) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}
