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
        }
    }
}
