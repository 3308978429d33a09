//! What the control plane holds of an instance: the plan it was started from, what its
//! supervisor and the scaler share (its upstream, its freezer, its recorded usage), and the
//! handle that stops it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hoist_core::{DeploymentId, EnvVars, InstanceId, InstanceState, ServiceName, ServiceSpec};
use hoist_gateway::Upstream;
use hoist_sandbox::{CgroupStats, Freezer};
use hoist_store::{InstanceUsage, Store, UsageDelta, now_ms, utc_day};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a replaced instance may go on serving requests it already had.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// Everything needed to start an instance of one deployment.
#[derive(Debug, Clone)]
pub(crate) struct InstancePlan {
    pub(crate) service: ServiceName,
    pub(crate) deployment: DeploymentId,
    /// App layer first, runtime root filesystem last.
    pub(crate) layers: Vec<PathBuf>,
    pub(crate) spec: ServiceSpec,
    /// The instance's environment: the spec's file env overlaid by the service env.
    pub(crate) env: EnvVars,
    /// The service env revision `env` was made from; with the deployment, it tells whether
    /// an instance (or a warm standby) is current.
    pub(crate) revision: u64,
}

impl InstancePlan {
    /// What makes two plans start identical instances.
    pub(crate) fn key(&self) -> (DeploymentId, u64) {
        (self.deployment.clone(), self.revision)
    }
}

/// What the instance's supervisor and the scaler both need: its upstream (state, in-flight
/// requests, idle time) and how much of its usage has been recorded.
pub(crate) struct InstanceShared {
    pub(crate) id: InstanceId,
    pub(crate) service: ServiceName,
    pub(crate) upstream: Arc<Upstream>,
    /// `None` for a sandbox that cannot be frozen (the tests' fakes): usage reads 0.
    pub(crate) freezer: Option<Freezer>,
    pub(crate) memory_mb: u32,
    /// Usage already added to the daily totals.
    pub(crate) recorded: Mutex<UsageMark>,
    /// The state last written to the database, so the scaler writes only changes.
    pub(crate) recorded_state: Mutex<InstanceState>,
}

impl InstanceShared {
    /// Memory and CPU time of the instance now, from its cgroup.
    pub(crate) fn stats(&self) -> CgroupStats {
        self.freezer
            .as_ref()
            .map(Freezer::stats)
            .unwrap_or_default()
    }

    pub(crate) fn cpu_usage_ns(&self) -> u64 {
        self.freezer.as_ref().map_or(0, Freezer::cpu_usage_ns)
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct UsageMark {
    pub(crate) active_ms: u64,
    pub(crate) frozen_ms: u64,
    pub(crate) cpu_ns: u64,
    pub(crate) requests: u64,
}

/// A running instance as its deployment holds it: stopping it ends its supervisor.
pub(crate) struct InstanceHandle {
    pub(crate) id: InstanceId,
    pub(crate) shared: Arc<InstanceShared>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl InstanceHandle {
    /// `task` supervises the instance and ends once it is gone; `stop` asks it to stop.
    pub(crate) fn new(
        shared: Arc<InstanceShared>,
        stop: CancellationToken,
        task: JoinHandle<()>,
    ) -> InstanceHandle {
        InstanceHandle {
            id: shared.id.clone(),
            shared,
            stop,
            task,
        }
    }

    pub(crate) fn upstream(&self) -> &Arc<Upstream> {
        &self.shared.upstream
    }

    /// Asks the instance to stop (SIGTERM, then SIGKILL after the grace period); the returned
    /// handle completes once it is gone.
    pub(crate) fn stop(self) -> JoinHandle<()> {
        self.stop.cancel();
        self.task
    }

    /// For an instance already taken out of the routes: lets the requests it is serving finish
    /// (up to `DRAIN_LIMIT`), then stops it.
    pub(crate) async fn drain_and_stop(self) {
        self.shared.upstream.retire();
        let deadline = Instant::now() + DRAIN_LIMIT;
        while self.shared.upstream.in_flight() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.stop().await;
    }
}

/// Adds what an instance used since the last call to the service's daily totals and
/// stores its running totals.
pub(crate) fn record_usage(store: &Store, shared: &InstanceShared) {
    let usage = shared.upstream.usage();
    let cpu_ns = shared.cpu_usage_ns();
    let (delta, totals) = {
        let mut mark = shared.recorded.lock().unwrap_or_else(|p| p.into_inner());
        // A cgroup that is already gone reads 0: keep the last figure.
        let cpu_ns = cpu_ns.max(mark.cpu_ns);
        let delta = UsageDelta {
            active_ms: usage.active_ms.saturating_sub(mark.active_ms),
            frozen_ms: usage.frozen_ms.saturating_sub(mark.frozen_ms),
            cpu_ms: (cpu_ns / 1_000_000).saturating_sub(mark.cpu_ns / 1_000_000),
            mb_ms: usage.active_ms.saturating_sub(mark.active_ms) * u64::from(shared.memory_mb),
            requests: usage.requests.saturating_sub(mark.requests),
            cold_starts: 0,
        };
        mark.active_ms = mark.active_ms.max(usage.active_ms);
        mark.frozen_ms = mark.frozen_ms.max(usage.frozen_ms);
        mark.requests = mark.requests.max(usage.requests);
        mark.cpu_ns = cpu_ns;
        let totals = InstanceUsage {
            active_ms: mark.active_ms,
            frozen_ms: mark.frozen_ms,
            cpu_ms: mark.cpu_ns / 1_000_000,
            requests: mark.requests,
        };
        (delta, totals)
    };
    if !delta.is_zero() {
        let day = utc_day(now_ms());
        if let Err(e) = store.add_usage(&shared.service, &day, &delta) {
            tracing::warn!(service = %shared.service, error = %e, "recording usage");
        }
        let _ = store.set_instance_usage(&shared.id, &totals);
    }
}
