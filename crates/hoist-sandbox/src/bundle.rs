//! OCI bundles. One function turns Hoist's idea of a sandbox into a crun `config.json`, so an
//! instance and a build differ only in the fields of [`SandboxSpec`], never in code paths.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount,
    MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
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
    /// Builds run `apt-get` and `pip` as root inside their own root filesystem, so they get
    /// Docker's default capability set (file ownership, setuid for apt's sandbox user, ...).
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
    pub rootfs: PathBuf,
    pub readonly_root: bool,
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

const CPU_PERIOD_US: u64 = 100_000;

const BUILD_CAPS: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Mknod,
    Capability::AuditWrite,
    Capability::Setfcap,
];

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
    let process = ProcessBuilder::default()
        .terminal(false)
        .args(s.process.args.clone())
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
    for b in &s.binds {
        let mut options = vec![
            "rbind".to_string(),
            "nosuid".to_string(),
            "nodev".to_string(),
        ];
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

    let quota = (u64::from(s.cpu_millicores) * CPU_PERIOD_US / 1000).max(1000) as i64;
    let mut resources = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .quota(quota)
                .period(CPU_PERIOD_US)
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
            .readonly(s.readonly_root)
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
