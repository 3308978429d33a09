//! A sandbox from start to cleanup: network namespace, owned cgroup, overlay root, bundle and
//! the crun child. Builds and instances both go through [`Sandboxes::launch`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::process::{ChildStderr, ChildStdout};

use crate::SandboxError;
use crate::bundle::{BindMount, Network, Privileges, ProcessSpec, SandboxSpec, write_bundle};
use crate::cgroup::OwnedCgroup;
use crate::crun::{Crun, ExitStatus};
use crate::netns::{NetNs, NetNsPool};
use crate::overlay::Overlay;

const CGROUP_PARENT: &str = "hoist";
const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub hostname: String,
    /// Read-only layers, topmost first; the runtime's root filesystem is last.
    pub layers: Vec<PathBuf>,
    /// For builds: the writable upper dir and overlayfs' work dir.
    pub upper: Option<(PathBuf, PathBuf)>,
    pub process: ProcessSpec,
    pub memory_mb: u64,
    pub cpu_millicores: u32,
    pub pids_limit: i64,
    pub tmp_size_mb: u64,
    pub privileges: Privileges,
    pub binds: Vec<BindMount>,
}

/// Where each part of a launch went, for the cold-start benchmark.
#[derive(Debug, Clone, Copy, Default)]
pub struct LaunchTimings {
    pub network: Duration,
    pub bundle: Duration,
    pub crun_spawn: Duration,
}

#[derive(Debug)]
pub struct Sandboxes {
    root: PathBuf,
    crun: Crun,
    pool: Arc<NetNsPool>,
}

#[derive(Debug)]
pub struct Sandbox {
    id: String,
    crun: Crun,
    netns: Option<Arc<NetNs>>,
    cgroup: OwnedCgroup,
    rootfs: Option<Overlay>,
    dir: PathBuf,
    child: tokio::process::Child,
}

pub struct Launched {
    pub sandbox: Sandbox,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
    pub netns: Arc<NetNs>,
    pub timings: LaunchTimings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxExit {
    pub status: ExitStatus,
    pub oom_killed: bool,
}

impl std::fmt::Display for SandboxExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.oom_killed {
            write!(f, "killed: out of memory ({})", self.status)
        } else {
            write!(f, "{}", self.status)
        }
    }
}

impl Sandboxes {
    /// `root` holds bundles and crun's state; it is private to this server.
    pub fn new(root: &Path) -> Result<Sandboxes, SandboxError> {
        std::fs::create_dir_all(root.join("crun"))
            .map_err(SandboxError::io(format!("creating {}", root.display())))?;
        Ok(Sandboxes {
            root: root.to_path_buf(),
            crun: Crun::new(root.join("crun")),
            pool: NetNsPool::new(root.join("netns-spares"), 2),
        })
    }

    /// Removes containers, mounts, cgroups and namespaces left by an earlier run of the server
    /// (a `kill -9` leaves all of them behind).
    pub async fn remove_stale(&self) {
        if let Ok(ids) = self.crun.list().await {
            for id in ids {
                let _ = self.crun.delete(&id, true).await;
            }
        }
        // Every sandbox has its bundle dir before it has anything else, so the bundle dirs
        // name everything an earlier run of this server can have left behind.
        let bundles = self.root.join("bundles");
        if let Ok(entries) = std::fs::read_dir(&bundles) {
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().to_string();
                let _ = crate::overlay::unmount(&entry.path().join("rootfs"));
                if let Ok(name) = std::fs::read_to_string(entry.path().join("netns")) {
                    NetNsPool::remove_stale(name.trim()).await;
                }
                crate::cgroup::OwnedCgroup::forget(&format!("{CGROUP_PARENT}/{id}"));
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        self.pool.remove_stale_spares().await;
    }

    /// Starts making spare network namespaces in the background.
    pub fn prewarm(&self) {
        self.pool.refill();
    }

    /// Removes the spares; call on shutdown, after the instances are stopped.
    pub async fn shutdown(&self) {
        self.pool.drain().await;
    }

    pub async fn launch(&self, id: &str, spec: LaunchSpec) -> Result<Launched, SandboxError> {
        let mut timings = LaunchTimings::default();
        let dir = self.root.join("bundles").join(id);
        std::fs::create_dir_all(&dir)
            .map_err(SandboxError::io(format!("creating {}", dir.display())))?;
        let t = Instant::now();
        let netns = match self.pool.take().await {
            Ok(ns) => Arc::new(ns),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        // The bundle dir names the namespace, so a restarted server can find it.
        if let Err(e) = std::fs::write(dir.join("netns"), netns.name()) {
            release_netns(Some(netns)).await;
            let _ = std::fs::remove_dir_all(&dir);
            return Err(SandboxError::io(
                "recording the sandbox's network namespace",
            )(e));
        }
        timings.network = t.elapsed();

        let t = Instant::now();
        let prepared = self.prepare(id, &dir, &spec, &netns);
        let (cgroup, rootfs) = match prepared {
            Ok(p) => p,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                release_netns(Some(netns)).await;
                return Err(e);
            }
        };
        timings.bundle = t.elapsed();

        let t = Instant::now();
        let mut container = match self.crun.spawn(id, &dir) {
            Ok(c) => c,
            Err(e) => {
                drop(rootfs);
                cgroup.remove();
                let _ = std::fs::remove_dir_all(&dir);
                release_netns(Some(netns)).await;
                return Err(e);
            }
        };
        timings.crun_spawn = t.elapsed();
        let stdout = container.child.stdout.take();
        let stderr = container.child.stderr.take();
        let sandbox = Sandbox {
            id: id.to_string(),
            crun: self.crun.clone(),
            netns: Some(netns.clone()),
            cgroup,
            rootfs: Some(rootfs),
            dir,
            child: container.child,
        };
        match (stdout, stderr) {
            (Some(stdout), Some(stderr)) => Ok(Launched {
                sandbox,
                stdout,
                stderr,
                netns,
                timings,
            }),
            _ => {
                sandbox.destroy().await;
                Err(SandboxError::Host(
                    "crun started without output pipes".into(),
                ))
            }
        }
    }

    fn prepare(
        &self,
        id: &str,
        dir: &Path,
        spec: &LaunchSpec,
        netns: &NetNs,
    ) -> Result<(OwnedCgroup, Overlay), SandboxError> {
        std::fs::create_dir_all(dir)
            .map_err(SandboxError::io(format!("creating {}", dir.display())))?;
        let hosts = dir.join("hosts");
        std::fs::write(
            &hosts,
            format!(
                "127.0.0.1\tlocalhost\n::1\tlocalhost\n{}\thost.hoist.internal\n{}\t{}\n",
                netns.host_addr(),
                netns.guest_addr(),
                spec.hostname
            ),
        )
        .map_err(SandboxError::io("writing /etc/hosts"))?;
        let resolv = dir.join("resolv.conf");
        std::fs::copy(host_resolv_conf(), &resolv)
            .map_err(SandboxError::io("copying the host's resolv.conf"))?;

        let lowers: Vec<&Path> = spec.layers.iter().map(PathBuf::as_path).collect();
        let upper = spec.upper.as_ref().map(|(u, w)| (u.as_path(), w.as_path()));
        let rootfs = Overlay::mount(&lowers, upper, &dir.join("rootfs"))?;

        let memory_bytes = spec.memory_mb * 1024 * 1024;
        let cgroup = OwnedCgroup::create(&format!("{CGROUP_PARENT}/{id}"), memory_bytes)
            .map_err(SandboxError::io("creating the sandbox cgroup"))?;

        let mut binds = vec![
            BindMount {
                source: hosts,
                destination: "/etc/hosts".into(),
                readonly: true,
            },
            BindMount {
                source: resolv,
                destination: "/etc/resolv.conf".into(),
                readonly: true,
            },
        ];
        if Path::new(HOST_CA_BUNDLE).exists() {
            binds.push(BindMount {
                source: HOST_CA_BUNDLE.into(),
                destination: HOST_CA_BUNDLE.into(),
                readonly: true,
            });
        }
        binds.extend(spec.binds.iter().cloned());
        let sandbox_spec = SandboxSpec {
            hostname: spec.hostname.clone(),
            rootfs: rootfs.target().to_path_buf(),
            readonly_root: spec.upper.is_none(),
            process: spec.process.clone(),
            memory_bytes: cgroup.limit_in_spec().then_some(memory_bytes as i64),
            cpu_millicores: spec.cpu_millicores,
            pids_limit: spec.pids_limit,
            tmp_size_mb: spec.tmp_size_mb,
            network: Network::Namespace(netns.path()),
            binds,
            privileges: spec.privileges,
            cgroups_path: cgroup.child_path(),
        };
        if let Err(e) = write_bundle(dir, &sandbox_spec) {
            cgroup.remove();
            return Err(e);
        }
        Ok((cgroup, rootfs))
    }
}

/// The host's resolver configuration as seen from another network namespace: with
/// systemd-resolved, /etc/resolv.conf names 127.0.0.53, which inside a sandbox is the
/// sandbox's own loopback; the upstream servers are in resolved's own file.
fn host_resolv_conf() -> &'static str {
    let loopback_only = std::fs::read_to_string("/etc/resolv.conf").is_ok_and(|t| {
        let servers: Vec<&str> = t
            .lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .map(str::trim)
            .collect();
        !servers.is_empty() && servers.iter().all(|s| s.starts_with("127.") || *s == "::1")
    });
    if loopback_only && Path::new("/run/systemd/resolve/resolv.conf").exists() {
        "/run/systemd/resolve/resolv.conf"
    } else {
        "/etc/resolv.conf"
    }
}

async fn release_netns(netns: Option<Arc<NetNs>>) {
    if let Some(ns) = netns
        && let Err(e) = ns.remove().await
    {
        tracing::warn!(netns = ns.name(), error = %e, "removing network namespace");
    }
}

impl Sandbox {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn cgroup(&self) -> &OwnedCgroup {
        &self.cgroup
    }

    /// Waits for the app to exit.
    pub async fn wait(&mut self) -> SandboxExit {
        let status = match self.child.wait().await {
            Ok(s) => ExitStatus::from_std(s),
            Err(_) => ExitStatus {
                code: None,
                signal: None,
            },
        };
        SandboxExit {
            status,
            oom_killed: status.signal == Some(9) && self.cgroup.oom_kills() > 0,
        }
    }

    pub async fn signal(&self, signal: &str) -> Result<(), SandboxError> {
        self.crun.kill(&self.id, signal).await
    }

    /// Asks the app to stop, waits up to `grace`, then kills it; cleans up everything.
    pub async fn stop(mut self, grace: Duration) -> SandboxExit {
        let _ = self.signal("TERM").await;
        let exit = match tokio::time::timeout(grace, self.wait()).await {
            Ok(exit) => exit,
            Err(_) => {
                let _ = self.signal("KILL").await;
                self.wait().await
            }
        };
        self.destroy().await;
        exit
    }

    /// Removes what is left once the app has exited (or kills it first).
    pub async fn destroy(mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.crun.kill(&self.id, "KILL").await;
            let _ = self.child.wait().await;
        }
        let _ = self.crun.delete(&self.id, true).await;
        if let Some(rootfs) = self.rootfs.take()
            && let Err(e) = rootfs.unmount()
        {
            tracing::warn!(sandbox = %self.id, error = %e, "unmounting root filesystem");
        }
        self.cgroup.remove();
        let _ = std::fs::remove_dir_all(&self.dir);
        release_netns(self.netns.take()).await;
    }
}
