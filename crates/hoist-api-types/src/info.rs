use hoist_core::Scaling;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /v1/server`: what a client needs to know of the server to offer the right choices
/// (the deploy form's memory sizes and scaling defaults) and links (the apps' domain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerInfo {
    /// The server's version.
    pub version: String,
    /// Apps are served as `NAME.<domain>` on the gateway.
    pub domain: String,
    /// The memory a service may have, in MB.
    pub memory: MemoryRange,
    /// Memory sizes to offer, with the CPU share each buys (CPU follows memory: 1769 MB is
    /// one full core).
    pub memory_options: Vec<MemoryOption>,
    /// The scaling settings of a service that sets none.
    pub scaling_defaults: Scaling,
    /// Which machine the server runs on ([`ServerInfo::this_machine`]): a client on another
    /// machine cannot have the server read its local paths, so it uploads the repository.
    /// `null` when the server cannot tell (no `/etc/machine-id`).
    #[serde(default)]
    pub machine: Option<String>,
    /// The largest upload (git bundle) the server takes, in bytes (`hoist server
    /// --max-upload`); a client refuses a larger one before sending it.
    #[serde(default)]
    pub max_upload_bytes: Option<u64>,
    /// The role of the token that asked. Only an `admin` token may deploy a path on the
    /// server's disk, so the CLI uploads a local repository for any other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_role: Option<hoist_core::TokenRole>,
}

/// The memory limits a service may have, in MB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MemoryRange {
    pub default_mb: u32,
    pub min_mb: u32,
    pub max_mb: u32,
}

/// One memory size and the CPU share that comes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MemoryOption {
    pub memory_mb: u32,
    /// Thousandths of a core (289 is 0.29 vCPU).
    pub cpu_millicores: u32,
}

impl ServerInfo {
    /// The sizes offered: the powers of two from the minimum, and the sizes where each
    /// further core begins, up to the maximum.
    pub const MEMORY_SIZES: [u32; 9] = [128, 256, 512, 1024, 1769, 2048, 3538, 5307, 7076];

    /// The info of a server of `version` serving apps under `domain`.
    pub fn new(version: &str, domain: &str) -> ServerInfo {
        use hoist_core::MemoryMb;
        ServerInfo {
            version: version.to_string(),
            domain: domain.to_string(),
            memory: MemoryRange {
                default_mb: MemoryMb::DEFAULT,
                min_mb: MemoryMb::MIN,
                max_mb: MemoryMb::MAX,
            },
            memory_options: Self::MEMORY_SIZES
                .iter()
                .filter_map(|mb| MemoryMb::new(*mb).ok())
                .map(|m| MemoryOption {
                    memory_mb: m.get(),
                    cpu_millicores: m.cpu_millicores(),
                })
                .collect(),
            scaling_defaults: Scaling::default(),
            machine: Self::this_machine(),
            max_upload_bytes: None,
            caller_role: None,
        }
    }

    /// This machine's fingerprint: a hash of `/etc/machine-id`, so that the id itself (which
    /// systemd asks not to expose) is not on the wire. The server answers its own, and the
    /// CLI compares it with its own to know whether the server can read the CLI's files.
    pub fn this_machine() -> Option<String> {
        let id = std::fs::read_to_string("/etc/machine-id").ok()?;
        machine_fingerprint(id.trim())
    }
}

fn machine_fingerprint(machine_id: &str) -> Option<String> {
    use sha2::Digest;
    if machine_id.is_empty() {
        return None;
    }
    let digest = sha2::Sha256::digest(format!("hoist machine {machine_id}").as_bytes());
    Some(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod machine_tests {
    use super::machine_fingerprint;

    #[test]
    fn the_fingerprint_is_stable_short_and_not_the_id() {
        let a = machine_fingerprint("3d1219c7c4c5404aaa1f6d2a48adfda4").unwrap();
        assert_eq!(a.len(), 16);
        assert_eq!(
            machine_fingerprint("3d1219c7c4c5404aaa1f6d2a48adfda4"),
            Some(a.clone())
        );
        assert!(!"3d1219c7c4c5404aaa1f6d2a48adfda4".contains(&a));
        assert_ne!(machine_fingerprint("another"), Some(a));
        assert_eq!(machine_fingerprint(""), None);
    }
}
