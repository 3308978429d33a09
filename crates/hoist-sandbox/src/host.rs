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
fn ensure_rule<S: AsRef<std::ffi::OsStr>>(
    table: &str,
    verb: &str,
    chain: &str,
    spec: &[S],
) -> Result<(), SandboxError> {
    // -w: several servers may start at once; with the legacy backend they share a lock.
    let exists = Command::new("iptables")
        .args(["-w", "5", "-t", table, "-C", chain])
        .args(spec)
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if exists {
        return Ok(());
    }
    run(Command::new("iptables")
        .args(["-w", "5", "-t", table, verb, chain])
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
    let dir = runtime_dir_path(data_dir)?;
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

/// Where [`runtime_dir`] puts `data_dir`'s sandbox state, without creating anything.
fn runtime_dir_path(data_dir: &Path) -> Result<std::path::PathBuf, SandboxError> {
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
    Ok(base.join(format!(
        "{:016x}",
        fnv1a(canonical.as_os_str().as_encoded_bytes())
    )))
}

/// FNV-1a: a stable name, not a security boundary.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The interface group (`ip link set DEV group N`) of every veth a server with sandbox state
/// in `run_dir` makes, so the kernel can tell whose sandbox a packet comes from: all servers
/// on a host share one subnet and the `hh` prefix, but each has its own host filter (see
/// [`HostInput`]). Never 0, the kernel's default group, and below 2^31: `ip` reads the
/// group as a signed int.
pub(crate) fn link_group(run_dir: &Path) -> u32 {
    let h = fnv1a(run_dir.as_os_str().as_encoded_bytes());
    match ((h ^ (h >> 32)) as u32) & 0x7fff_ffff {
        0 => 1,
        g => g,
    }
}

/// What instances and builds of one server may open connections to on the host itself
/// (`host.hoist.internal`, and every other address of the host): the operator's chosen TCP
/// ports, DNS to a resolver on the host, replies to what the host opened; nothing else.
///
/// Several servers may run on one host, all sandboxes sharing one subnet, so the rules are
/// keyed by the server's veth group: a jump in `INPUT` matches only this server's links and
/// leads to its own chain, which each start empties and refills in one `iptables-restore`
/// transaction. Starting one server never touches another's rules, and a restart with other
/// ports keeps none of the old ones.
#[derive(Debug)]
pub struct HostInput {
    chain: String,
    group: u32,
}

impl HostInput {
    /// Installs (or replaces) the filter for the server whose data dir is `data_dir`: TCP
    /// ports `open` are reachable, `never` (the server's own API and gateway) are refused.
    pub fn install(
        data_dir: &Path,
        open: &[u16],
        never: &[u16],
    ) -> Result<HostInput, SandboxError> {
        if let Some(port) = open.iter().find(|p| never.contains(p)) {
            return Err(SandboxError::ReservedHostPort(*port));
        }
        let group = link_group(&runtime_dir_path(data_dir)?);
        let filter = HostInput {
            chain: format!("HOIST-IN-{group:08x}"),
            group,
        };
        let resolvers = resolvers(
            &std::fs::read_to_string(crate::sandbox::host_resolv_conf()).unwrap_or_default(),
        );
        let rules = filter.rules(open, never, &resolvers);
        restore(&rules)?;
        // Below every server's jump (those are inserted at the top), shared by all servers
        // and never removed: a sandbox link whose server has no filter in place (stopped
        // with a sandbox it could not kill, say) reaches nothing on the host either.
        ensure_rule(
            "filter",
            "-A",
            "INPUT",
            &[
                "-i",
                "hh+",
                "-j",
                "REJECT",
                "--reject-with",
                "icmp-port-unreachable",
            ],
        )?;
        // After the chain exists: a jump to a missing chain is refused.
        ensure_rule("filter", "-I", "INPUT", &filter.jump_spec())?;
        Ok(filter)
    }

    fn jump_spec(&self) -> Vec<String> {
        [
            "-i",
            "hh+",
            "-m",
            "devgroup",
            "--src-group",
            &format!("{:#x}", self.group),
            "-j",
            &self.chain,
        ]
        .map(String::from)
        .to_vec()
    }

    /// The chain as `iptables-restore --noflush` takes it: declaring it empties it.
    fn rules(&self, open: &[u16], never: &[u16], resolvers: &[std::net::Ipv4Addr]) -> String {
        let c = &self.chain;
        let mut r = format!("*filter\n:{c} - [0:0]\n");
        r += &format!("-A {c} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n");
        // The server's own ports first: nothing below may open them.
        for port in never {
            r += &format!("-A {c} -p tcp --dport {port} -j REJECT --reject-with tcp-reset\n");
        }
        // Builds and instances resolve names with the host's resolv.conf; a resolver on one of
        // the host's own addresses is reached through here (others are routed out).
        for ns in resolvers {
            for proto in ["udp", "tcp"] {
                r += &format!("-A {c} -d {ns} -p {proto} --dport 53 -j ACCEPT\n");
            }
        }
        for port in open {
            r += &format!("-A {c} -p tcp --dport {port} -j ACCEPT\n");
        }
        // Refused rather than dropped: a connection to a closed port fails at once, as it
        // would on a host with nothing listening.
        r += &format!("-A {c} -p tcp -j REJECT --reject-with tcp-reset\n");
        r += &format!("-A {c} -j REJECT --reject-with icmp-port-unreachable\n");
        r += "COMMIT\n";
        r
    }

    /// Removes the filter (on a clean shutdown, once no sandbox of this server is left).
    pub fn remove(&self) {
        let spec = self.jump_spec();
        let _ = run(Command::new("iptables")
            .args(["-w", "5", "-D", "INPUT"])
            .args(&spec));
        let _ = run(Command::new("iptables").args(["-w", "5", "-F", &self.chain]));
        let _ = run(Command::new("iptables").args(["-w", "5", "-X", &self.chain]));
    }
}

/// The IPv4 name servers of a resolv.conf.
fn resolvers(resolv_conf: &str) -> Vec<std::net::Ipv4Addr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse().ok())
        .collect()
}

/// Loads `rules` in one transaction, leaving every chain it does not declare as it is.
fn restore(rules: &str) -> Result<(), SandboxError> {
    use std::io::Write;
    let mut child = Command::new("iptables-restore")
        .args(["-w", "5", "--noflush"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(SandboxError::io("running iptables-restore"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(rules.as_bytes())
            .map_err(SandboxError::io("writing to iptables-restore"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(SandboxError::io("waiting for iptables-restore"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(SandboxError::Command {
            command: "iptables-restore --noflush".into(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn is_tmpfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::NetNsPool;

    #[test]
    fn resolvers_are_the_ipv4_name_servers() {
        let conf =
            "# comment\nnameserver 10.0.0.53\nnameserver ::1\nsearch x\nnameserver  192.0.2.1 \n";
        assert_eq!(
            resolvers(conf),
            vec![
                std::net::Ipv4Addr::new(10, 0, 0, 53),
                std::net::Ipv4Addr::new(192, 0, 2, 1)
            ]
        );
    }

    #[test]
    fn the_servers_own_ports_cannot_be_opened() {
        let err = HostInput::install(Path::new("/nonexistent"), &[22, 7070], &[8080, 7070])
            .expect_err("7070 is the API's");
        assert!(matches!(err, SandboxError::ReservedHostPort(7070)), "{err}");
    }

    async fn reaches(ns: &crate::NetNs, port: u16) -> bool {
        let addr = std::net::SocketAddr::from((ns.host_addr(), port));
        matches!(
            tokio::time::timeout(std::time::Duration::from_secs(5), ns.connect_to(addr)).await,
            Ok(Ok(_))
        )
    }

    fn jumps_to(chain: &str) -> usize {
        let out = Command::new("iptables")
            .args(["-w", "5", "-S", "INPUT"])
            .output()
            .expect("iptables -S");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.ends_with(&format!("-j {chain}")))
            .count()
    }

    /// Real iptables rules and a real namespace: needs root, as the whole suite does.
    #[tokio::test]
    async fn a_restart_with_other_ports_opens_only_those() {
        let data = std::env::temp_dir().join(format!("hoist-hostinput-{}", std::process::id()));
        std::fs::create_dir_all(&data).unwrap();
        let listen = || {
            let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
            let port = l.local_addr().unwrap().port();
            (l, port)
        };
        let ((_a, a), (_b, b)) = (listen(), listen());
        let group = link_group(&runtime_dir_path(&data).unwrap());
        let pool = NetNsPool::new(data.join("spares"), 0, group);
        let ns = pool.take().await.unwrap();

        let first = HostInput::install(&data, &[a], &[]).unwrap();
        let seen_first = (reaches(&ns, a).await, reaches(&ns, b).await);
        let second = HostInput::install(&data, &[b], &[]).unwrap();
        let seen_second = (reaches(&ns, a).await, reaches(&ns, b).await);
        let jumps = jumps_to(&second.chain);
        second.remove();
        let jumps_after_remove = jumps_to(&first.chain);
        // With the server's filter gone, the shared catch-all still refuses both.
        let seen_unfiltered = (reaches(&ns, a).await, reaches(&ns, b).await);
        let _ = ns.remove().await;
        let _ = std::fs::remove_dir_all(&data);

        assert_eq!(seen_first, (true, false), "opened {a} only");
        assert_eq!(seen_second, (false, true), "restarted with {b} only");
        assert_eq!(
            jumps, 1,
            "one jump to the server's chain, however often it starts"
        );
        assert_eq!(jumps_after_remove, 0);
        assert_eq!(
            seen_unfiltered,
            (false, false),
            "a link with no server's filter reaches nothing"
        );
    }
}
