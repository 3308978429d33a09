use hoist_core::{
    DeploymentId, DeploymentState, DeploymentTrigger, InstanceId, InstanceState, Scaling,
    ServiceName, ServiceSpec, StaticFolder,
};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct ServiceRecord {
    pub name: ServiceName,
    /// The spec of the latest deploy request that got far enough to resolve one.
    pub spec: serde_json::Value,
    pub live_deployment: Option<DeploymentId>,
    /// The scaling settings last set for the service; `None` until any are (the defaults apply).
    pub scaling: Option<Scaling>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub step: String,
    pub state: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeploymentRecord {
    pub id: DeploymentId,
    pub service: ServiceName,
    pub state: DeploymentState,
    pub source: String,
    pub branch: Option<String>,
    pub commit_sha: Option<String>,
    /// What the client asked for (flags), kept to explain the resolved spec.
    pub request: serde_json::Value,
    pub spec: Option<ServiceSpec>,
    pub image: Option<String>,
    pub runtime_version: Option<String>,
    pub failure_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    pub steps: Vec<StepRecord>,
    /// What started it.
    pub trigger: DeploymentTrigger,
    /// When a rollback last made it live again (epoch ms).
    pub rolled_back_at: Option<i64>,
    /// The static folder its deploy took from the build (migration 13).
    pub static_folder: Option<StaticFolder>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstanceRecord {
    pub id: InstanceId,
    pub service: ServiceName,
    pub deployment: DeploymentId,
    pub state: InstanceState,
    pub created_at: i64,
    pub ready_at: Option<i64>,
    pub stopped_at: Option<i64>,
    pub exit_reason: Option<String>,
    /// Started for a request that found no instance to take it (a cold start).
    pub cold: bool,
    /// The memory limit the instance was started with.
    pub memory_mb: u32,
    pub usage: InstanceUsage,
}

/// What one instance has used over its life so far: absolute totals, not deltas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct InstanceUsage {
    /// Time running (not frozen) since it started.
    pub active_ms: u64,
    pub frozen_ms: u64,
    /// CPU time consumed.
    pub cpu_ms: u64,
    pub requests: u64,
}

/// Usage to add to a service's total for one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageDelta {
    pub active_ms: u64,
    pub frozen_ms: u64,
    pub cpu_ms: u64,
    /// Active milliseconds times the instance's memory in MB.
    pub mb_ms: u64,
    pub requests: u64,
    pub cold_starts: u64,
}

impl UsageDelta {
    pub fn is_zero(&self) -> bool {
        *self == UsageDelta::default()
    }
}

/// One service's usage on one UTC day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageDay {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub active_ms: u64,
    pub frozen_ms: u64,
    pub cpu_ms: u64,
    pub mb_ms: u64,
    /// Memory over active time: `mb_ms / 1024 / 1000`.
    pub gb_seconds: f64,
    pub requests: u64,
    pub cold_starts: u64,
}
