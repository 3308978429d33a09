//! OCI bundles. One function turns Hoist's idea of a sandbox into a crun `config.json`, so an
//! instance and a build differ only in the fields of [`SandboxSpec`], never in code paths.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroup,
    LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount, MountBuilder,
    PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
    get_default_maskedpaths, get_default_mounts, get_default_readonly_paths,
};

use crate::{SandboxError, seccomp};

#[derive(Debug, Clone)]
pub struct BindMount {
    pub source: PathBuf,
    pub destination: PathBuf,
    pub readonly: bool,
}

#[derive(Debug, Clone)]
pub enum Network {
    /// Join an existing namespace (the path under /run/netns).
    Namespace(String),
}

/// What the process may do beyond an unprivileged one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privileges {
    /// Instances: no capabilities at all.
    None,
    /// Builds run `apt-get`, `pip`, `npm` and `cargo` as root inside their own root
    /// filesystem, so they get the few capabilities those need (see `BUILD_CAPS`).
    Build,
}

#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
}

#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub hostname: String,
    /// The root filesystem. crun's `root.readonly` is not used: crun 1.8 remounts the root
    /// with MS_BIND (and MS_RDONLY) alone, which clears `nodev` and `nosuid`, so the root's
    /// flags (read-only for instances, always `nodev,nosuid`) are set after `crun create`
    /// instead, by `overlay::seal_container_root`.
    pub rootfs: PathBuf,
    pub process: ProcessSpec,
    /// `None` when the limit is enforced by the owned parent cgroup instead (cgroup v1).
    pub memory_bytes: Option<i64>,
    pub cpu_millicores: u32,
    pub pids_limit: i64,
    pub tmp_size_mb: u64,
    pub network: Network,
    pub binds: Vec<BindMount>,
    pub privileges: Privileges,
    pub cgroups_path: String,
}

/// What a build needs as root in its own root filesystem, and nothing more:
/// - `CHOWN`, `FOWNER`, `FSETID`: dpkg, pip, npm and cargo unpack files with their owners,
///   modes and setgid bits (dpkg chowns to system users such as `_apt`, keeps `chmod g+s`).
/// - `DAC_OVERRIDE`: root writes into directories it does not own (`/var/lib/apt/lists/partial`
///   belongs to `_apt`).
/// - `SETUID`, `SETGID`: apt drops to its `_apt` user to download; maintainer scripts `su`
///   or `setpriv` to system users.
/// - `KILL`: apt stops its download methods, which run as `_apt`.
///
/// Left out on purpose: `MKNOD` (device nodes), `SETFCAP` and `SETPCAP` (file and process
/// capabilities: `no_new_privs` and `nosuid` make them mean nothing, so maintainer scripts fall
/// back to plain modes), `NET_BIND_SERVICE`, `SYS_CHROOT` and `AUDIT_WRITE` (no build needs
/// them).
const BUILD_CAPS: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Setgid,
    Capability::Setuid,
];

/// The host's init, placed read-only into every sandbox as its PID 1: it reaps orphans (an app
/// as PID 1 leaves them as zombies until the pids limit is full) and passes signals on. Static,
/// so it runs on any runtime's root filesystem. Debian's `tini` package; scripts/setup.sh.
pub const HOST_INIT: &str = "/usr/bin/tini-static";

/// Where the init appears: the sandbox's own `/dev` tmpfs, since the root may be read-only
/// and a build's root must not gain a mount point file in its layer.
const SANDBOX_INIT: &str = "/dev/hoist-init";

/// Mount options every mount of a sandbox gets (but `/dev` and `/dev/pts`, which hold the
/// allowed device nodes).
const NODEV_NOSUID: [&str; 2] = ["nodev", "nosuid"];

/// The device cgroup: deny everything, then allow the OCI/Docker default nodes (null, zero,
/// full, random, urandom, tty, console, ptmx and the pts). A device node that a sandbox
/// somehow has (a build's layer, say) is then still unusable.
fn device_rules() -> Result<Vec<LinuxDeviceCgroup>, SandboxError> {
    let mut rules = vec![
        LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()?,
    ];
    let allowed: [(i64, Option<i64>); 9] = [
        (1, Some(3)), // null
        (1, Some(5)), // zero
        (1, Some(7)), // full
        (1, Some(8)), // random
        (1, Some(9)), // urandom
        (5, Some(0)), // tty
        (5, Some(1)), // console
        (5, Some(2)), // ptmx
        (136, None),  // pts/*
    ];
    for (major, minor) in allowed {
        let mut rule = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(major)
            .access("rwm");
        if let Some(minor) = minor {
            rule = rule.minor(minor);
        }
        rules.push(rule.build()?);
    }
    Ok(rules)
}

/// Apps get as many open files as Hoist itself may have, up to 65536: raising the hard limit
/// above the server's own is not permitted without CAP_SYS_RESOURCE.
fn nofile_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(_, hard)| hard.min(65_536))
        .unwrap_or(1024)
}

pub fn spec(s: &SandboxSpec) -> Result<Spec, SandboxError> {
    let caps: HashSet<Capability> = match s.privileges {
        Privileges::None => HashSet::new(),
        Privileges::Build => BUILD_CAPS.iter().copied().collect(),
    };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps.clone())
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()?;
    // tini -g: signals go to the app's whole process group, as `kill --all` did before there
    // was an init, and each process gets a stop signal once.
    let mut args = vec![SANDBOX_INIT.to_string(), "-g".into(), "--".into()];
    args.extend(s.process.args.iter().cloned());
    let process = ProcessBuilder::default()
        .terminal(false)
        .args(args)
        .env(s.process.env.clone())
        .cwd(PathBuf::from(&s.process.cwd))
        .no_new_privileges(true)
        .capabilities(capabilities)
        .rlimits(vec![
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .hard(nofile_limit())
                .soft(nofile_limit())
                .build()?,
        ])
        .build()?;

    let mut mounts: Vec<Mount> = get_default_mounts()
        .into_iter()
        // The cgroup tree of the host is none of an app's business.
        .filter(|m| m.destination() != Path::new("/sys/fs/cgroup"))
        .map(|mut m| {
            // oci-spec's /proc has no options at all.
            if m.destination() == Path::new("/proc") {
                m.set_options(Some(
                    ["nosuid", "nodev", "noexec"].map(String::from).to_vec(),
                ));
            }
            m
        })
        .collect();
    mounts.push(
        MountBuilder::default()
            .destination("/tmp")
            .typ("tmpfs")
            .source("tmpfs")
            .options(vec![
                "nosuid".to_string(),
                "nodev".to_string(),
                "mode=1777".to_string(),
                format!("size={}m", s.tmp_size_mb),
            ])
            .build()?,
    );
    let init = BindMount {
        source: HOST_INIT.into(),
        destination: SANDBOX_INIT.into(),
        readonly: true,
    };
    for b in std::iter::once(&init).chain(&s.binds) {
        let mut options = vec!["rbind".to_string()];
        options.extend(NODEV_NOSUID.map(String::from));
        if b.readonly {
            options.push("ro".to_string());
        }
        mounts.push(
            MountBuilder::default()
                .destination(b.destination.clone())
                .typ("bind")
                .source(b.source.clone())
                .options(options)
                .build()?,
        );
    }

    let mut resources = LinuxResourcesBuilder::default()
        .devices(device_rules()?)
        .cpu(
            LinuxCpuBuilder::default()
                .quota(hoist_core::cpu_quota_us(
                    s.cpu_millicores,
                    hoist_core::CPU_PERIOD_US,
                ))
                .period(hoist_core::CPU_PERIOD_US)
                .build()?,
        )
        .pids(LinuxPidsBuilder::default().limit(s.pids_limit).build()?);
    if let Some(bytes) = s.memory_bytes {
        resources = resources.memory(
            LinuxMemoryBuilder::default()
                .limit(bytes)
                .swap(bytes)
                .build()?,
        );
    }

    let Network::Namespace(netns) = &s.network;
    let mut namespaces = vec![
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Pid)
            .build()?,
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Ipc)
            .build()?,
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Uts)
            .build()?,
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Mount)
            .build()?,
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Cgroup)
            .build()?,
    ];
    namespaces.push(
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Network)
            .path(PathBuf::from(netns))
            .build()?,
    );

    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build()?)
        .cgroups_path(PathBuf::from(&s.cgroups_path))
        .masked_paths(get_default_maskedpaths())
        .readonly_paths(get_default_readonly_paths())
        .seccomp(seccomp::profile()?)
        .build()?;

    let mut spec = Spec::default();
    spec.set_hostname(Some(s.hostname.clone()));
    spec.set_root(Some(
        RootBuilder::default()
            .path(s.rootfs.clone())
            .readonly(false)
            .build()?,
    ));
    spec.set_process(Some(process));
    spec.set_mounts(Some(mounts));
    spec.set_linux(Some(linux));
    Ok(spec)
}

/// Writes `dir/config.json` for `s`.
pub fn write_bundle(dir: &Path, s: &SandboxSpec) -> Result<(), SandboxError> {
    std::fs::create_dir_all(dir).map_err(SandboxError::io(format!(
        "creating bundle {}",
        dir.display()
    )))?;
    spec(s)?.save(dir.join("config.json"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(privileges: Privileges, cpu_millicores: u32) -> Spec {
        spec(&SandboxSpec {
            hostname: "t".into(),
            rootfs: "/nonexistent/rootfs".into(),
            process: ProcessSpec {
                args: vec!["bash".into(), "-c".into(), "true".into()],
                env: Vec::new(),
                cwd: "/app".into(),
            },
            memory_bytes: Some(128 << 20),
            cpu_millicores,
            pids_limit: 1024,
            tmp_size_mb: 64,
            network: Network::Namespace("/run/netns/t".into()),
            binds: vec![BindMount {
                source: "/etc/hosts".into(),
                destination: "/etc/hosts".into(),
                readonly: true,
            }],
            privileges,
            cgroups_path: "/hoist/t/ctr".into(),
        })
        .unwrap()
    }

    fn capabilities(spec: &Spec) -> &oci_spec::runtime::LinuxCapabilities {
        spec.process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap()
    }

    fn resources(spec: &Spec) -> &oci_spec::runtime::LinuxResources {
        spec.linux().as_ref().unwrap().resources().as_ref().unwrap()
    }

    #[test]
    fn builds_hold_no_mknod_and_instances_nothing() {
        let build = sandbox(Privileges::Build, 2000);
        let caps = capabilities(&build);
        for set in [caps.effective(), caps.bounding(), caps.permitted()] {
            let set = set.as_ref().unwrap();
            assert!(!set.contains(&Capability::Mknod));
            assert!(!set.contains(&Capability::Setfcap));
            assert!(set.contains(&Capability::Chown), "apt-get needs CHOWN");
        }
        let instance = sandbox(Privileges::None, 72);
        let caps = capabilities(&instance);
        assert!(caps.effective().as_ref().unwrap().is_empty());
        assert!(caps.bounding().as_ref().unwrap().is_empty());
    }

    #[test]
    fn the_device_cgroup_denies_all_but_the_default_nodes() {
        let s = sandbox(Privileges::Build, 2000);
        let devices = resources(&s).devices().clone().unwrap();
        assert_eq!(devices[0].to_string(), "a *:* rwm");
        assert!(!devices[0].allow());
        let allowed: Vec<String> = devices[1..]
            .iter()
            .inspect(|d| assert!(d.allow()))
            .map(|d| d.to_string())
            .collect();
        assert_eq!(
            allowed,
            [
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 1:7 rwm",
                "c 1:8 rwm",
                "c 1:9 rwm",
                "c 5:0 rwm",
                "c 5:1 rwm",
                "c 5:2 rwm",
                "c 136:* rwm"
            ]
        );
    }

    #[test]
    fn every_mount_but_dev_is_nodev_nosuid_and_crun_does_not_remount_the_root() {
        let s = sandbox(Privileges::None, 72);
        assert_eq!(s.root().as_ref().unwrap().readonly(), Some(false));
        for m in s.mounts().as_ref().unwrap() {
            let dest = m.destination().display().to_string();
            if dest == "/dev" || dest == "/dev/pts" {
                continue;
            }
            let options = m.options().clone().unwrap_or_default();
            for flag in NODEV_NOSUID {
                assert!(options.iter().any(|o| o == flag), "{dest}: {options:?}");
            }
        }
    }

    #[test]
    fn the_init_is_pid_1_and_read_only() {
        let s = sandbox(Privileges::None, 72);
        let args = s.process().as_ref().unwrap().args().clone().unwrap();
        assert_eq!(args, [SANDBOX_INIT, "-g", "--", "bash", "-c", "true"]);
        let init = s
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == Path::new(SANDBOX_INIT))
            .expect("the init's bind mount");
        assert_eq!(init.source().as_deref(), Some(Path::new(HOST_INIT)));
        assert!(init.options().as_ref().unwrap().iter().any(|o| o == "ro"));
    }

    #[test]
    fn the_cpu_quota_follows_the_memory_table() {
        // The README's table: proportional up to one core at 1769 MB, whole cores above.
        for (mb, quota) in [
            (128, 7_200),
            (256, 14_400),
            (1769, 100_000),
            (3538, 200_000),
            (7076, 400_000),
        ] {
            let memory = hoist_core::MemoryMb::new(mb).unwrap();
            let s = sandbox(Privileges::None, memory.cpu_millicores());
            let cpu = resources(&s).cpu().clone().unwrap();
            assert_eq!(cpu.period(), Some(hoist_core::CPU_PERIOD_US));
            assert_eq!(cpu.quota(), Some(quota), "{mb} MB");
        }
    }
}
