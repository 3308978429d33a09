//! A sandbox from start to cleanup: network namespace, owned cgroup, overlay root, bundle and
//! the crun child. Builds and instances both go through [`Sandboxes::launch`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::process::{ChildStderr, ChildStdout};

use crate::SandboxError;
use crate::bundle::{BindMount, Network, Privileges, ProcessSpec, SandboxSpec, write_bundle};
use crate::cgroup::{Freezer, OwnedCgroup};
use crate::crun::{Crun, ExitStatus};
use crate::netns::{NetNs, NetNsPool};
use crate::overlay::Overlay;
use crate::process::{Adopted, Process};

const CGROUP_PARENT: &str = "hoist";
const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stop keeps killing an app that does not go away.
const KILL_WAIT: Duration = Duration::from_secs(5);

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
    /// Read-only root filesystems by their layers, shared by every sandbox of one deployment.
    shared_roots: std::sync::Mutex<std::collections::HashMap<String, std::sync::Weak<Overlay>>>,
}

/// A sandbox's root: its own overlay (builds, which write to it) or one shared read-only
/// mount. Sharing is what keeps a start from paying for a fresh mount's cold dentry and inode
/// caches (6 ms for a Python app here); the root is read-only, so instances cannot see each
/// other through it.
#[derive(Debug)]
enum Root {
    Own(Overlay),
    Shared(Arc<Overlay>),
}

impl Root {
    fn target(&self) -> &Path {
        match self {
            Root::Own(o) => o.target(),
            Root::Shared(o) => o.target(),
        }
    }
}

#[derive(Debug)]
pub struct Sandbox {
    id: String,
    crun: Crun,
    netns: Option<Arc<NetNs>>,
    cgroup: OwnedCgroup,
    rootfs: Option<Root>,
    dir: PathBuf,
    process: Process,
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
        if !Path::new(crate::bundle::HOST_INIT).is_file() {
            return Err(SandboxError::Host(format!(
                "{} (every sandbox's PID 1) is missing: install Debian's tini package \
                 (scripts/setup.sh does)",
                crate::bundle::HOST_INIT
            )));
        }
        std::fs::create_dir_all(root.join("crun"))
            .map_err(SandboxError::io(format!("creating {}", root.display())))?;
        Ok(Sandboxes {
            root: root.to_path_buf(),
            crun: Crun::new(root.join("crun")),
            pool: NetNsPool::new(root.join("netns-spares"), 2, crate::host::link_group(root)),
            shared_roots: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// Removes containers, mounts, cgroups and namespaces left by an earlier run of the server
    /// (a `kill -9` leaves all of them behind).
    pub async fn remove_stale(&self) {
        // A crun still running from the earlier server (a create or a build's run) would
        // finish its container after the cleanup below and leave it orphaned.
        self.crun.kill_stale_processes();
        // Frozen processes do not die of SIGKILL until thawed.
        if let Ok(entries) = std::fs::read_dir(self.root.join("bundles")) {
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().to_string();
                OwnedCgroup::thaw_stale(&format!("{CGROUP_PARENT}/{id}"));
            }
        }
        if let Ok(ids) = self.crun.list().await {
            for id in ids {
                let _ = self.crun.delete(&id, true).await;
            }
        }
        // A crun killed halfway through `create` can leave a state dir that `list` skips
        // and `delete` refuses; its processes die with its cgroup below.
        self.crun.remove_state_dirs();
        // Every sandbox has its bundle dir before it has anything else, so the bundle dirs
        // name everything an earlier run of this server can have left behind.
        let bundles = self.root.join("bundles");
        if let Ok(entries) = std::fs::read_dir(&bundles) {
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().to_string();
                OwnedCgroup::kill_stale(&format!("{CGROUP_PARENT}/{id}"));
                let _ = crate::overlay::unmount(&entry.path().join("rootfs"));
                if let Ok(name) = std::fs::read_to_string(entry.path().join("netns")) {
                    NetNsPool::remove_stale(name.trim()).await;
                }
                crate::cgroup::OwnedCgroup::forget(&format!("{CGROUP_PARENT}/{id}"));
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        self.pool.remove_stale_spares().await;
        if let Ok(entries) = std::fs::read_dir(self.root.join("roots")) {
            for entry in entries.flatten() {
                let _ = crate::overlay::unmount(&entry.path());
                let _ = std::fs::remove_dir(entry.path());
            }
        }
    }

    /// The shared read-only root for `lowers`, mounted if no sandbox uses it yet.
    fn shared_root(&self, lowers: &[&Path]) -> Result<Arc<Overlay>, SandboxError> {
        use std::hash::{Hash, Hasher};
        let key = lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let mut roots = self.shared_roots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(root) = roots.get(&key).and_then(std::sync::Weak::upgrade) {
            return Ok(root);
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let target = self.root.join("roots").join(format!("{:016x}", h.finish()));
        let root = Arc::new(Overlay::mount(lowers, None, &target)?);
        roots.retain(|_, w| w.strong_count() > 0);
        roots.insert(key, Arc::downgrade(&root));
        Ok(root)
    }

    /// Starts making spare network namespaces in the background.
    pub fn prewarm(&self) {
        self.pool.refill();
    }

    /// Removes the spares; call on shutdown, after the instances are stopped.
    pub async fn shutdown(&self) {
        self.pool.drain().await;
    }

    /// Runs `spec` in a new sandbox at once; for builds. Created and started as instances
    /// are, since the root's mount flags are set between the two (see
    /// `overlay::seal_container_root`).
    pub async fn launch(&self, id: &str, spec: LaunchSpec) -> Result<Launched, SandboxError> {
        let mut launched = self.make(id, spec).await?;
        if let Err(e) = launched.sandbox.start().await {
            launched.sandbox.destroy().await;
            return Err(e);
        }
        Ok(launched)
    }

    /// Sets a sandbox up completely but leaves its process waiting before its first
    /// instruction; [`Sandbox::start`] lets it run. This is the warm pool's unit: everything
    /// slow about a start (namespaces, mounts, cgroups, seccomp, crun itself) is paid here.
    pub async fn create(&self, id: &str, spec: LaunchSpec) -> Result<Launched, SandboxError> {
        self.make(id, spec).await
    }

    async fn make(&self, id: &str, spec: LaunchSpec) -> Result<Launched, SandboxError> {
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
        let spawned = self.crun_create(id, &dir, spec.upper.is_none()).await;
        let (process, (stdout, stderr)) = match spawned {
            Ok(p) => p,
            Err(e) => {
                let _ = self.crun.delete(id, true).await;
                drop(rootfs);
                cgroup.remove();
                let _ = std::fs::remove_dir_all(&dir);
                release_netns(Some(netns)).await;
                return Err(e);
            }
        };
        timings.crun_spawn = t.elapsed();
        let sandbox = Sandbox {
            id: id.to_string(),
            crun: self.crun.clone(),
            netns: Some(netns.clone()),
            cgroup,
            rootfs: Some(rootfs),
            dir,
            process,
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

    /// `crun create`, seals the container's root (see `overlay::seal_container_root`), then
    /// adopts the container's init (see `process.rs`).
    async fn crun_create(
        &self,
        id: &str,
        dir: &Path,
        readonly_root: bool,
    ) -> Result<(Process, (Option<ChildStdout>, Option<ChildStderr>)), SandboxError> {
        let pid_file = dir.join("pid");
        let mut child = self.crun.create(id, dir, &pid_file)?;
        let stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let status = match tokio::time::timeout(CREATE_TIMEOUT, child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => return Err(SandboxError::io("waiting for crun create")(e)),
            Err(_) => {
                let _ = child.kill().await;
                return Err(SandboxError::Host(format!(
                    "crun create did not finish within {}s",
                    CREATE_TIMEOUT.as_secs()
                )));
            }
        };
        if !status.success() {
            // The container was not made, so nothing else holds the pipe: read crun's error.
            let mut text = String::new();
            if let Some(err) = stderr.as_mut() {
                use tokio::io::AsyncReadExt;
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    err.take(16 * 1024).read_to_string(&mut text),
                )
                .await;
            }
            return Err(SandboxError::Command {
                command: "crun create".into(),
                stderr: text.trim().to_string(),
            });
        }
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .ok_or_else(|| SandboxError::Host("crun create wrote no pid file".into()))?;
        let adopted = Adopted::open(pid)?;
        crate::overlay::seal_container_root(pid, readonly_root)?;
        Ok((Process::Adopted(adopted), (stdout, stderr)))
    }

    fn prepare(
        &self,
        id: &str,
        dir: &Path,
        spec: &LaunchSpec,
        netns: &NetNs,
    ) -> Result<(OwnedCgroup, Root), SandboxError> {
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
        let rootfs = match upper {
            Some(_) => Root::Own(Overlay::mount(&lowers, upper, &dir.join("rootfs"))?),
            None => Root::Shared(self.shared_root(&lowers)?),
        };

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
pub(crate) fn host_resolv_conf() -> &'static str {
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

    /// Lets a sandbox made with [`Sandboxes::create`] run its process.
    pub async fn start(&mut self) -> Result<(), SandboxError> {
        self.crun.start(&self.id).await
    }

    pub fn freezer(&self) -> Freezer {
        self.cgroup.freezer()
    }

    /// Its CPU quota, which the startup boost raises while the app boots.
    pub fn cpu_quota(&self) -> crate::CpuQuota {
        self.cgroup.cpu_quota()
    }

    /// The container's init as the host sees it (adopted sandboxes only).
    pub fn pid(&self) -> Option<i32> {
        match &self.process {
            Process::Adopted(a) => Some(a.pid()),
        }
    }

    /// Waits for the app to exit.
    pub async fn wait(&mut self) -> SandboxExit {
        let status: ExitStatus = self.process.wait().await.through_init();
        SandboxExit {
            status,
            oom_killed: status.signal == Some(9) && self.cgroup.oom_kills() > 0,
        }
    }

    /// Sends `signal` to every process of the sandbox.
    pub async fn signal(&self, signal: &str) -> Result<(), SandboxError> {
        self.crun.kill(&self.id, signal).await
    }

    /// Asks the app to stop, waits up to `grace`, then kills it; cleans up everything.
    pub async fn stop(mut self, grace: Duration) -> SandboxExit {
        // A frozen app cannot act on SIGTERM.
        let _ = self.cgroup.freezer().thaw();
        // To the init, which passes it to the app's process group once.
        let _ = self.crun.kill_init(&self.id, "TERM").await;
        let exit = match tokio::time::timeout(grace, self.wait()).await {
            Ok(exit) => exit,
            Err(_) => self.kill_and_wait().await,
        };
        self.destroy().await;
        exit
    }

    /// SIGKILLs the app and waits for it, for at most `KILL_WAIT`. Each round thaws it again
    /// and signals its init directly when crun cannot run: out of file descriptors, the thaw
    /// (a cgroup file write) and crun both fail, and on cgroup v1 a frozen process does not
    /// die of SIGKILL until thawed, so one attempt and an unbounded wait left a server's
    /// shutdown stuck for good. Past the bound the app is left to the next start's cleanup.
    async fn kill_and_wait(&mut self) -> SandboxExit {
        let deadline = Instant::now() + KILL_WAIT;
        loop {
            let _ = self.cgroup.freezer().thaw();
            if self.signal("KILL").await.is_err() {
                self.process.kill();
            }
            if let Ok(exit) = tokio::time::timeout(Duration::from_millis(250), self.wait()).await {
                return exit;
            }
            if Instant::now() >= deadline {
                tracing::warn!(sandbox = %self.id, "still running after SIGKILL; leaving it to the next start's cleanup");
                return SandboxExit {
                    status: ExitStatus {
                        code: None,
                        signal: None,
                    },
                    oom_killed: false,
                };
            }
        }
    }

    /// Removes what is left once the app has exited (or kills it first).
    pub async fn destroy(mut self) {
        if self.process.running() {
            let _ = self.cgroup.freezer().thaw();
            let _ = self.crun.kill(&self.id, "KILL").await;
            // `crun kill` fails while crun is still setting the container up (a build
            // cancelled right after it began); then the process itself and whatever reached
            // the cgroup are killed, or this would wait for a build that runs on.
            if tokio::time::timeout(Duration::from_millis(500), self.process.wait())
                .await
                .is_err()
            {
                self.process.kill();
                let rel = format!("{CGROUP_PARENT}/{}", self.id);
                let _ = tokio::task::spawn_blocking(move || OwnedCgroup::kill_stale(&rel)).await;
                // Bounded, as in `kill_and_wait`.
                if tokio::time::timeout(KILL_WAIT, self.process.wait())
                    .await
                    .is_err()
                {
                    tracing::warn!(sandbox = %self.id, "still running after SIGKILL; leaving it to the next start's cleanup");
                }
            }
        }
        let _ = self.crun.delete(&self.id, true).await;
        // A shared root is unmounted when its last sandbox lets go of it.
        if let Some(Root::Own(rootfs)) = self.rootfs.take()
            && let Err(e) = rootfs.unmount()
        {
            tracing::warn!(sandbox = %self.id, error = %e, "unmounting root filesystem");
        }
        self.cgroup.remove();
        let _ = std::fs::remove_dir_all(&self.dir);
        release_netns(self.netns.take()).await;
    }
}
