//! What `hoist ls` and `hoist status` show of services: the stored records joined with what
//! runs now (instances, starts, held requests) from the services' state.

use hoist_core::{DeploymentId, ServiceName};
use hoist_gateway::UpstreamState;

use crate::boost::StartupBoost;
use crate::error::ControlError;
use crate::handle::InstanceShared;
use hoist_api_types::{LiveInstanceView, ServiceView};

use crate::platform::Platform;

impl Platform {
    pub fn service_view(&self, name: &ServiceName) -> Result<ServiceView, ControlError> {
        let service = self
            .store
            .get_service(name)?
            .ok_or_else(|| ControlError::ServiceNotFound(name.to_string()))?;
        let (requests_24h, errors_24h) = self
            .store
            .request_counts(day_ago())?
            .remove(name.as_str())
            .unwrap_or_default();
        let (running, starting, waiting, scaling, unrecorded_cold) = {
            let services = self.state();
            match services.get(name) {
                Some(state) => {
                    // The handles only: their cgroups are read once the lock is released, as
                    // the scaler and the activator take this lock.
                    let running: Vec<_> = state
                        .live
                        .iter()
                        .flat_map(|l| {
                            l.instances
                                .iter()
                                .map(move |i| (l.id.clone(), i.shared.clone()))
                        })
                        .collect();
                    (
                        running,
                        state.pool.starting(),
                        state.pool.waiting(),
                        state.scaling,
                        state.pool.cold_starts().saturating_sub(state.cold_recorded),
                    )
                }
                None => (Vec::new(), 0, 0, service.scaling.unwrap_or_default(), 0),
            }
        };
        let boost = &self.launcher.boost;
        let running = running
            .iter()
            .map(|(d, shared)| live_view(d, shared, true, boost))
            .collect();
        Ok(ServiceView {
            url: self.url(name),
            scaling,
            deployments: into_vec(self.store.list_deployments(name)?),
            running,
            starting,
            waiting,
            cold_starts: self.store.cold_starts_total(name)? + unrecorded_cold,
            instances: into_vec(self.store.list_instances(name, 20)?),
            events_24h: self
                .store
                .event_counts(name, day_ago())?
                .into_iter()
                .collect(),
            requests_24h,
            errors_24h,
            service: service.into(),
        })
    }

    pub fn list(&self) -> Result<Vec<ServiceView>, ControlError> {
        let services = self.store.list_services()?;
        let mut counts = self.store.request_counts(day_ago())?;
        let mut views = Vec::with_capacity(services.len());
        for service in services {
            let (running, scaling) = {
                let state = self.state();
                match state.get(&service.name) {
                    Some(s) => (
                        s.live
                            .iter()
                            .flat_map(|l| l.instances.iter().map(move |i| (l, i)))
                            // The list shows states and counts, not usage: no cgroup is read.
                            .map(|(l, i)| live_view(&l.id, &i.shared, false, &self.launcher.boost))
                            .collect(),
                        s.scaling,
                    ),
                    None => (Vec::new(), service.scaling.unwrap_or_default()),
                }
            };
            let (requests_24h, errors_24h) =
                counts.remove(service.name.as_str()).unwrap_or_default();
            views.push(ServiceView {
                url: self.url(&service.name),
                scaling,
                deployments: self
                    .store
                    .list_deployments(&service.name)?
                    .into_iter()
                    .take(1)
                    .map(Into::into)
                    .collect(),
                running,
                starting: 0,
                waiting: 0,
                cold_starts: 0,
                instances: Vec::new(),
                events_24h: Default::default(),
                requests_24h,
                errors_24h,
                service: service.into(),
            });
        }
        Ok(views)
    }
}

fn day_ago() -> i64 {
    hoist_store::now_ms() - 24 * 3600 * 1000
}

/// Store rows as the API shows them (hoist-api-types' conversions).
fn into_vec<T, U: From<T>>(rows: Vec<T>) -> Vec<U> {
    rows.into_iter().map(U::from).collect()
}

/// `read_cgroup`: read the instance's memory and CPU now from its cgroup (a few file reads).
fn live_view(
    deployment: &DeploymentId,
    shared: &InstanceShared,
    read_cgroup: bool,
    boost: &StartupBoost,
) -> LiveInstanceView {
    let normal = hoist_core::MemoryMb::new(shared.memory_mb).map_or(0, |m| m.cpu_millicores());
    let boosted = boost.status(&shared.id).filter(|b| b.boosted);
    let up = &shared.upstream;
    let usage = up.usage();
    // The same reading as `/metrics` takes. No cgroup (a fake sandbox), or none that could be
    // read (a running process always uses some memory): unknown, not zero.
    let cgroup = shared
        .freezer
        .as_ref()
        .filter(|_| read_cgroup)
        .map(|_| shared.stats())
        .filter(|c| c.memory_bytes > 0);
    LiveInstanceView {
        id: shared.id.clone(),
        deployment: deployment.clone(),
        state: match up.state() {
            UpstreamState::Ready | UpstreamState::Freezing => "ready",
            UpstreamState::Frozen | UpstreamState::Thawing => "frozen",
            UpstreamState::Retired => "stopping",
        }
        .to_string(),
        in_flight: up.in_flight(),
        idle_ms: up.idle_for().as_millis() as u64,
        active_ms: usage.active_ms,
        frozen_ms: usage.frozen_ms,
        requests: usage.requests,
        memory_bytes: cgroup.map(|c| c.memory_bytes),
        cpu_ms: cgroup.map(|c| c.cpu_usage_ns / 1_000_000),
        cpu_millicores: boosted.map_or(normal, |b| b.millicores),
        boosted: boosted.is_some(),
        boosted_until: boosted.and_then(|b| b.until_ms),
    }
}
