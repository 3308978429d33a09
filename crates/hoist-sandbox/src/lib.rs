//! Sandboxes: OCI runtime bundles, the crun driver, network namespaces, overlay root
//! filesystems and cgroup accounting. Everything a container needs from the host lives here,
//! so the rest of Hoist talks about "an instance" and never about mounts or netlink.

mod bundle;
mod cgroup;
mod cpu;
mod crun;
mod error;
mod host;
mod netns;
mod overlay;
mod probe;
mod process;
mod seccomp;

pub use bundle::{BindMount, Network, Privileges, ProcessSpec, SandboxSpec, write_bundle};
pub use cgroup::{CgroupStats, Freezer, OwnedCgroup};
pub use cpu::CpuQuota;
pub use crun::{Crun, ExitStatus};
pub use error::SandboxError;
pub use host::{HostInput, HostNet, prepare_host, runtime_dir};
pub use netns::{NetNs, NetNsPool, SUBNET};
pub use overlay::{Overlay, unmount};
pub use probe::probe_http;
pub use process::become_subreaper;
mod sandbox;
pub use sandbox::{LaunchSpec, LaunchTimings, Launched, Sandbox, SandboxExit, Sandboxes};
