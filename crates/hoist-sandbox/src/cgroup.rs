//! Reading an instance's cgroup. crun creates the same relative path in every v1 hierarchy
//! (and the unified one on v2 hosts), so one relative path finds all of them.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupStats {
    pub memory_bytes: u64,
    pub cpu_usage_ns: u64,
    pub oom_kills: u64,
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn keyed(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

impl CgroupStats {
    /// `rel` is the cgroupsPath given to crun, e.g. `/hoist/i-0123456789`.
    pub fn read(rel: &str) -> CgroupStats {
        let rel = rel.trim_start_matches('/');
        let v1 = |ctrl: &str, file: &str| -> PathBuf {
            Path::new("/sys/fs/cgroup").join(ctrl).join(rel).join(file)
        };
        let v2 = |file: &str| Path::new("/sys/fs/cgroup").join(rel).join(file);
        if Path::new("/sys/fs/cgroup/memory").join(rel).exists() {
            CgroupStats {
                memory_bytes: read_u64(&v1("memory", "memory.usage_in_bytes")).unwrap_or(0),
                cpu_usage_ns: read_u64(&v1("cpuacct", "cpuacct.usage")).unwrap_or(0),
                oom_kills: keyed(&v1("memory", "memory.oom_control"), "oom_kill").unwrap_or(0),
            }
        } else {
            CgroupStats {
                memory_bytes: read_u64(&v2("memory.current")).unwrap_or(0),
                cpu_usage_ns: keyed(&v2("cpu.stat"), "usage_usec").unwrap_or(0) * 1000,
                oom_kills: keyed(&v2("memory.events"), "oom_kill").unwrap_or(0),
            }
        }
    }
}

/// The parent cgroup Hoist owns for one sandbox; crun puts the container in a child of it.
///
/// On cgroup v1 the memory limit is set here rather than in config.json: crun removes its own
/// cgroup when the container exits, and v1 does not propagate OOM-kill counts upwards, so a
/// limit on the child would leave no trace of *why* the process died. With the limit on the
/// parent, the OOM is accounted in a cgroup that outlives the container.
#[derive(Debug)]
pub struct OwnedCgroup {
    rel: String,
    v1: bool,
}

impl OwnedCgroup {
    pub fn create(rel: &str, memory_bytes: u64) -> std::io::Result<OwnedCgroup> {
        let rel = rel.trim_matches('/').to_string();
        let v1_root = Path::new("/sys/fs/cgroup/memory");
        if v1_root.exists() {
            let dir = v1_root.join(&rel);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("memory.limit_in_bytes"), memory_bytes.to_string())?;
            Ok(OwnedCgroup { rel, v1: true })
        } else {
            std::fs::create_dir_all(Path::new("/sys/fs/cgroup").join(&rel))?;
            Ok(OwnedCgroup { rel, v1: false })
        }
    }

    /// Whether the limit must also go into the OCI config (cgroup v2 hosts).
    pub fn limit_in_spec(&self) -> bool {
        !self.v1
    }

    /// The cgroupsPath to give crun.
    pub fn child_path(&self) -> String {
        format!("/{}/ctr", self.rel)
    }

    /// OOM kills attributable to this sandbox. On v1 the kernel counts an OOM kill on the
    /// victim's own cgroup (crun's child, gone by the time we look), so the parent's record
    /// that its limit was hit (`memory.failcnt`) stands in for it; callers combine it with the
    /// SIGKILL exit.
    pub fn oom_kills(&self) -> u64 {
        if self.v1 {
            let dir = Path::new("/sys/fs/cgroup/memory").join(&self.rel);
            keyed(&dir.join("memory.oom_control"), "oom_kill")
                .unwrap_or(0)
                .max(read_u64(&dir.join("memory.failcnt")).unwrap_or(0).min(1))
        } else {
            keyed(
                &Path::new("/sys/fs/cgroup")
                    .join(&self.rel)
                    .join("memory.events"),
                "oom_kill",
            )
            .unwrap_or(0)
        }
    }

    pub fn stats(&self) -> CgroupStats {
        let mut s = CgroupStats::read(&self.child_path());
        s.oom_kills = self.oom_kills();
        s
    }

    /// A handle on the sandbox's freezer that can outlive borrows of the sandbox.
    pub fn freezer(&self) -> Freezer {
        Freezer {
            rel: self.rel.clone(),
            v1: self.v1,
        }
    }

    /// A handle on the container's CPU quota, to change it while it runs.
    pub fn cpu_quota(&self) -> crate::CpuQuota {
        crate::CpuQuota::new(&self.rel)
    }

    /// Thaws whatever is left at `rel` (after a `kill -9` of the server): frozen processes
    /// cannot act on SIGKILL, so cleanup must thaw first.
    pub fn thaw_stale(rel: &str) {
        let rel = rel.trim_matches('/');
        let v1 = Path::new("/sys/fs/cgroup/freezer").exists();
        let _ = set_frozen(rel, v1, false);
    }

    /// Kills every process left in the cgroup at `rel` and its container child, after thawing
    /// them, and waits (at most a second) until the kernel has emptied them. A container an
    /// earlier run left behind may have no crun state to `delete` it by (crun was killed
    /// mid-create), but its processes are always in its cgroup.
    pub fn kill_stale(rel: &str) {
        let rel = rel.trim_matches('/');
        Self::thaw_stale(rel);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        loop {
            let mut alive = false;
            for base in cgroup_bases() {
                for dir in [base.join(rel).join("ctr"), base.join(rel)] {
                    for pid in procs(&dir) {
                        alive = true;
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
            if !alive || std::time::Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Removes the parent (and any child crun left behind) from every hierarchy.
    pub fn remove(&self) {
        Self::forget(&self.rel);
    }

    /// Removes the cgroup at `rel` (and its container child) wherever it exists; cgroups that
    /// still hold processes stay, which is the kernel's rule and the safe one.
    pub fn forget(rel: &str) {
        let rel = rel.trim_matches('/');
        for base in cgroup_bases() {
            let dir = base.join(rel);
            let _ = std::fs::remove_dir(dir.join("ctr"));
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

/// Freezes and thaws one sandbox's processes with the cgroup freezer.
#[derive(Debug, Clone)]
pub struct Freezer {
    rel: String,
    v1: bool,
}

impl Freezer {
    /// Stops every process of the sandbox: they use no CPU and keep their memory. Blocks until
    /// the kernel reports the cgroup frozen (v1 freezes asynchronously), at most a second.
    pub fn freeze(&self) -> std::io::Result<()> {
        set_frozen(&self.rel, self.v1, true)
    }

    /// Lets the processes run again. Quick (one write to a cgroup file), so it is done on the
    /// request path.
    pub fn thaw(&self) -> std::io::Result<()> {
        set_frozen(&self.rel, self.v1, false)
    }

    /// CPU time the sandbox has used so far.
    pub fn cpu_usage_ns(&self) -> u64 {
        CgroupStats::read(&format!("/{}/ctr", self.rel)).cpu_usage_ns
    }

    /// Memory and CPU time of the sandbox now, from its cgroup.
    pub fn stats(&self) -> CgroupStats {
        CgroupStats::read(&format!("/{}/ctr", self.rel))
    }
}

fn set_frozen(rel: &str, v1: bool, frozen: bool) -> std::io::Result<()> {
    let (file, value, state_file, done): (PathBuf, &str, PathBuf, &str) = if v1 {
        let dir = Path::new("/sys/fs/cgroup/freezer").join(rel).join("ctr");
        let value = if frozen { "FROZEN" } else { "THAWED" };
        (
            dir.join("freezer.state"),
            value,
            dir.join("freezer.state"),
            value,
        )
    } else {
        let dir = Path::new("/sys/fs/cgroup").join(rel).join("ctr");
        let value = if frozen { "1" } else { "0" };
        let done = if frozen { "frozen 1" } else { "frozen 0" };
        (
            dir.join("cgroup.freeze"),
            value,
            dir.join("cgroup.events"),
            done,
        )
    };
    std::fs::write(&file, value)?;
    if !frozen {
        return Ok(());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let state = std::fs::read_to_string(&state_file)?;
        if state.lines().any(|l| l.trim() == done) {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("cgroup {rel} did not freeze within 1 s"),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

fn procs(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

fn cgroup_bases() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut bases = vec![root.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(root) {
        bases.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    bases
}
