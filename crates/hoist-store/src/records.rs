use hoist_core::{
    DeploymentId, DeploymentState, InstanceId, InstanceState, ServiceName, ServiceSpec,
};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct ServiceRecord {
    pub name: ServiceName,
    /// The spec of the latest deploy request that got far enough to resolve one.
    pub spec: serde_json::Value,
    pub live_deployment: Option<DeploymentId>,
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
}
