//! The services and their routing: per service, its gateway pool, scaling, live deployment
//! (with its instances) and the deployment being made; and the routing table the gateway
//! reads, published whole when services come or go.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use hoist_core::{DeploymentId, InstanceId, Scaling, ServiceName};
use hoist_gateway::{Activator, Gateway, PoolLimits, RoutingTable, ServicePool};
use tokio_util::sync::CancellationToken;

use crate::handle::{InstanceHandle, InstancePlan};

/// What runs for one service: its live deployment, that deployment's instances and the
/// gateway's pool for it.
pub(crate) struct ServiceState {
    pub(crate) pool: Arc<ServicePool>,
    pub(crate) scaling: Scaling,
    pub(crate) live: Option<LiveDeployment>,
    /// The deployment being built, cancelled when a newer one arrives.
    pub(crate) pending: Option<(DeploymentId, CancellationToken)>,
    /// When an instance last failed to start, so the scaler backs off a crash loop.
    pub(crate) last_start_failure: Option<std::time::Instant>,
    pub(crate) failures_in_a_row: u32,
    /// Cold starts already added to the daily totals.
    pub(crate) cold_recorded: u64,
}

pub(crate) struct LiveDeployment {
    pub(crate) id: DeploymentId,
    pub(crate) plan: Arc<InstancePlan>,
    pub(crate) instances: Vec<InstanceHandle>,
}

pub(crate) type ServiceMap = HashMap<ServiceName, ServiceState>;

pub(crate) struct Services {
    map: Mutex<ServiceMap>,
    gateway: Arc<Gateway>,
    /// Handed to each new pool: how the gateway asks for an instance.
    activator: Arc<dyn Activator>,
}

impl Services {
    pub(crate) fn new(gateway: Arc<Gateway>, activator: Arc<dyn Activator>) -> Services {
        Services {
            map: Mutex::new(HashMap::new()),
            gateway,
            activator,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ServiceMap> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The service's state, made (with its gateway pool) if it is new.
    pub(crate) fn ensure<'a>(
        &self,
        services: &'a mut ServiceMap,
        name: &ServiceName,
        scaling: Scaling,
    ) -> &'a mut ServiceState {
        services
            .entry(name.clone())
            .or_insert_with(|| ServiceState {
                pool: ServicePool::new(name.as_str(), limits(&scaling), self.activator.clone()),
                scaling,
                live: None,
                pending: None,
                last_start_failure: None,
                failures_in_a_row: 0,
                cold_recorded: 0,
            })
    }

    /// Hands the gateway a table of every service's pool in one atomic swap. Only needed when
    /// services come or go: instances change inside the pools.
    pub(crate) fn publish(&self) {
        let services = self.lock();
        let mut table = RoutingTable::new();
        for state in services.values() {
            table.insert(state.pool.clone());
        }
        drop(services);
        self.gateway.publish(table);
    }

    /// Whether deployment `id` is the one being made for `service`.
    pub(crate) fn is_pending(&self, service: &ServiceName, id: &DeploymentId) -> bool {
        self.lock()
            .get(service)
            .and_then(|s| s.pending.as_ref())
            .is_some_and(|(p, _)| p == id)
    }

    /// Whether the plan is the service's live one or that of the deployment being made.
    pub(crate) fn is_current(&self, plan: &InstancePlan) -> bool {
        self.lock().get(&plan.service).is_some_and(|s| {
            s.live.as_ref().is_some_and(|l| l.plan.key() == plan.key())
                || s.pending
                    .as_ref()
                    .is_some_and(|(p, _)| p == &plan.deployment)
        })
    }

    /// Whether instances of `plan` get the startup boost: for a deployment being made, its
    /// own spec's (resolved from the service's settings and the deploy's flags); otherwise
    /// (the live deployment, an env change's or a rollback's instances) the service's setting
    /// in force, which `hoist scale --startup-boost` changes without a redeploy.
    pub(crate) fn startup_boost(&self, plan: &InstancePlan) -> bool {
        match self.lock().get(&plan.service) {
            Some(s)
                if s.pending
                    .as_ref()
                    .is_none_or(|(p, _)| p != &plan.deployment) =>
            {
                s.scaling.startup_boost
            }
            _ => plan.spec.scaling.startup_boost,
        }
    }

    pub(crate) fn pool(&self, name: &ServiceName) -> Option<Arc<ServicePool>> {
        self.lock().get(name).map(|s| s.pool.clone())
    }

    pub(crate) fn live_plan(
        &self,
        name: &ServiceName,
    ) -> Option<(Arc<InstancePlan>, Arc<ServicePool>)> {
        let services = self.lock();
        let state = services.get(name)?;
        let live = state.live.as_ref()?;
        Some((live.plan.clone(), state.pool.clone()))
    }

    /// Adds a started instance to its deployment if that is still live; otherwise hands it
    /// back (to be stopped).
    pub(crate) fn adopt(
        &self,
        plan: &InstancePlan,
        handle: InstanceHandle,
    ) -> Result<(), InstanceHandle> {
        let mut services = self.lock();
        match services
            .get_mut(&plan.service)
            .and_then(|s| {
                s.failures_in_a_row = 0;
                s.live.as_mut()
            })
            .filter(|l| l.plan.key() == plan.key())
        {
            Some(live) => {
                live.instances.push(handle);
                Ok(())
            }
            None => Err(handle),
        }
    }

    pub(crate) fn note_start_failure(&self, name: &ServiceName) {
        if let Some(s) = self.lock().get_mut(name) {
            s.last_start_failure = Some(std::time::Instant::now());
            s.failures_in_a_row = s.failures_in_a_row.saturating_add(1);
        }
    }

    /// An instance died: out of its deployment and its pool.
    pub(crate) fn instance_gone(
        &self,
        service: &ServiceName,
        deployment: &DeploymentId,
        instance: &InstanceId,
    ) {
        let mut services = self.lock();
        if let Some(state) = services.get_mut(service) {
            state.pool.remove(instance.as_str());
            if let Some(live) = state.live.as_mut()
                && &live.id == deployment
            {
                live.instances.retain(|i| &i.id != instance);
            }
        }
    }
}

pub(crate) fn limits(scaling: &Scaling) -> PoolLimits {
    PoolLimits {
        concurrency: scaling.concurrency,
        max_instances: scaling.max_instances,
    }
}
