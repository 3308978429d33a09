//! One-time host preparation. Every step checks before it acts, so `hoist server` can run it
//! at each start and the setup script can run it again without harm.

use std::path::Path;
use std::process::Command;

use crate::SandboxError;
use crate::netns::SUBNET;

/// Addresses the host side of instance networking uses, handed to bundles so `/etc/hosts`
/// inside an instance can name the host.
#[derive(Debug, Clone)]
pub struct HostNet {
    pub subnet: &'static str,
}

pub fn prepare_host() -> Result<HostNet, SandboxError> {
    which("crun")?;
    which("ip")?;
    which("iptables")?;
    mount_hugetlb_v1()?;
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(SandboxError::io("enabling IPv4 forwarding"))?;
    // Instances reach registries and APIs outside through NAT; they must not reach each other
    // through the host, so forwarding between two instance veths is dropped.
    ensure_rule(
        "nat",
        "-A",
        "POSTROUTING",
        &["-s", SUBNET, "!", "-d", SUBNET, "-j", "MASQUERADE"],
    )?;
    ensure_rule(
        "filter",
        "-I",
        "FORWARD",
        &["-i", "hh+", "-o", "hh+", "-j", "DROP"],
    )?;
    // Inbound traffic reaches an app only through the gateway, which connects inside the
    // instance's namespace. An app bound to 0.0.0.0 must not also answer on its veth address
    // to host processes (OUTPUT) or to anything routed through the host (FORWARD): only
    // packets of connections the instance opened itself go out to it.
    for chain in ["FORWARD", "OUTPUT"] {
        ensure_rule(
            "filter",
            "-I",
            chain,
            &[
                "-o",
                "hh+",
                "-m",
                "conntrack",
                "!",
                "--ctstate",
                "ESTABLISHED,RELATED",
                "-j",
                "DROP",
            ],
        )?;
    }
    Ok(HostNet { subnet: SUBNET })
}

/// On hosts with cgroup v1 plus a v2 mount (this project's machines), crun refuses to run
/// ("cgroups in hybrid mode not supported") until the hugetlb controller has a v1 hierarchy.
fn mount_hugetlb_v1() -> Result<(), SandboxError> {
    let v1_memory = Path::new("/sys/fs/cgroup/memory");
    if !v1_memory.exists() {
        return Ok(());
    }
    let target = Path::new("/sys/fs/cgroup/hugetlb");
    if target.join("cgroup.procs").exists() {
        return Ok(());
    }
    let supported = std::fs::read_to_string("/proc/cgroups")
        .map(|s| s.lines().any(|l| l.starts_with("hugetlb")))
        .unwrap_or(false);
    if !supported {
        return Ok(());
    }
    std::fs::create_dir_all(target).map_err(SandboxError::io("creating /sys/fs/cgroup/hugetlb"))?;
    run(Command::new("mount")
        .args(["-t", "cgroup", "-o", "hugetlb", "cgroup"])
        .arg(target))
}

/// Adds an iptables rule unless an identical one is present (`-C` checks it).
fn ensure_rule(table: &str, verb: &str, chain: &str, spec: &[&str]) -> Result<(), SandboxError> {
    let exists = Command::new("iptables")
        .args(["-t", table, "-C", chain])
        .args(spec)
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if exists {
        return Ok(());
    }
    run(Command::new("iptables")
        .args(["-t", table, verb, chain])
        .args(spec))
}

fn which(bin: &str) -> Result<(), SandboxError> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(SandboxError::Host(format!(
            "`{bin}` is not installed; run scripts/setup.sh (it installs crun, iproute2 and iptables)"
        )))
    }
}

pub(crate) fn run(cmd: &mut Command) -> Result<(), SandboxError> {
    let out = cmd
        .output()
        .map_err(SandboxError::io(format!("running {cmd:?}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(SandboxError::Command {
            command: format!("{cmd:?}"),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The directory for one server's sandbox state (bundles with their config.json, crun's
/// state, mount points), on a tmpfs: a bundle's config.json holds the app's environment, and
/// secrets must not be written to disk in plain text. `/run` when it is a tmpfs (systemd
/// hosts), else `/dev/shm`. The name is derived from the data dir so a restarted server finds
/// what its predecessor left; `DATA/run` is made a symlink to it for people looking.
pub fn runtime_dir(data_dir: &Path) -> Result<std::path::PathBuf, SandboxError> {
    use std::os::unix::fs::DirBuilderExt;
    let base = if is_tmpfs(Path::new("/run")) {
        Path::new("/run/hoist")
    } else if is_tmpfs(Path::new("/dev/shm")) {
        Path::new("/dev/shm/hoist")
    } else {
        return Err(SandboxError::NoTmpfs);
    };
    let canonical = data_dir.canonicalize().map_err(SandboxError::io(format!(
        "resolving {}",
        data_dir.display()
    )))?;
    // FNV-1a: a stable name, not a security boundary.
    let key = canonical
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    let dir = base.join(format!("{key:016x}"));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(SandboxError::io(format!("creating {}", dir.display())))?;
    let link = data_dir.join("run");
    if std::fs::read_link(&link).ok().as_deref() != Some(dir.as_path()) {
        if std::fs::symlink_metadata(&link).is_ok_and(|m| m.is_dir()) {
            return Err(SandboxError::LegacyRunDir(link));
        }
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&dir, &link)
            .map_err(SandboxError::io(format!("linking {}", link.display())))?;
    }
    Ok(dir)
}

fn is_tmpfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
}
