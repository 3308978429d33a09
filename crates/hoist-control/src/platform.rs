use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoist_build::{Builder, Runtimes};
use hoist_core::{
    DeploymentId, DeploymentState, EnvVars, InstanceId, Scaling, ScalingLayer, ServiceName,
    ServiceSpec,
};
use hoist_gateway::{Activator, Gateway, PoolLimits, RoutingTable, ServicePool, UpstreamState};
use hoist_sandbox::Sandboxes;
use hoist_secrets::MasterKey;
use hoist_store::{DeploymentRecord, InstanceRecord, ServiceRecord, Store};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::instance::{InstanceHandle, InstancePlan, InstanceShared};
use crate::warm::WarmPool;
use crate::{ControlError, Event, LogHub};

#[derive(Debug, Clone)]
pub struct PlatformConfig {
    pub data_dir: PathBuf,
    pub runtime_cache: PathBuf,
    /// Base of service URLs: `http://NAME.<domain>[:port]/`.
    pub domain: String,
    pub gateway_port: u16,
    pub start_timeout: Duration,
    pub build_timeout: Duration,
    pub max_concurrent_builds: usize,
    /// Sandboxes kept created-but-not-started, one per recently used deployment.
    pub warm_pool: usize,
    /// Images kept per service: those of the most recent deployments that went live.
    pub keep_images: usize,
    pub retention: crate::Retention,
}

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

/// The gateway's way of asking for an instance; holds the platform weakly so the gateway's
/// pools do not keep it alive.
/// Starts run on the control plane's runtime: the gateway asks from its own worker threads,
/// whose event loops must not carry a start's slow work.
struct PlatformActivator {
    platform: std::sync::Weak<Platform>,
    runtime: tokio::runtime::Handle,
}

impl Activator for PlatformActivator {
    fn start_instance(&self, service: &str) {
        let Some(platform) = self.platform.upgrade() else {
            return;
        };
        match service.parse::<ServiceName>() {
            Ok(name) => {
                self.runtime.spawn(platform.start_for_pool(name, true));
            }
            Err(_) => {
                if let Some(pool) = platform.gateway.table().route(service) {
                    pool.start_finished(Err("unknown service".into()));
                }
            }
        }
    }
}

pub struct Platform {
    pub(crate) config: PlatformConfig,
    pub(crate) store: Arc<Store>,
    pub(crate) runtimes: Runtimes,
    pub(crate) builder: Builder,
    pub(crate) sandboxes: Arc<Sandboxes>,
    pub(crate) gateway: Arc<Gateway>,
    /// Seals and opens service environments; the key never enters the database.
    pub(crate) secrets: MasterKey,
    pub(crate) build_stats: crate::metrics::BuildStats,
    pub(crate) data_dir_size: crate::metrics::DiskGauge,
    pub(crate) logs: LogHub,
    /// Where the gateway hands its access records; set when the observers start.
    pub(crate) access_queue: std::sync::OnceLock<Arc<crate::observe::AccessQueue>>,
    pub(crate) services: Mutex<HashMap<ServiceName, ServiceState>>,
    pub(crate) build_slots: Semaphore,
    pub(crate) shutdown: CancellationToken,
    /// Instances being drained or stopped outside any service's live set: a graceful server
    /// stop waits for them, so none is left running without its cleanup.
    pub(crate) stopping: TaskTracker,
    pub(crate) warm: WarmPool,
    pub(crate) lifecycle: crate::lifecycle::Lifecycle,
    activator: Arc<dyn Activator>,
}

/// A running instance as the scaler sees it now.
#[derive(Debug, Serialize)]
pub struct LiveInstanceView {
    pub id: InstanceId,
    pub deployment: DeploymentId,
    /// ready, frozen or stopping.
    pub state: String,
    pub in_flight: usize,
    pub idle_ms: u64,
    pub active_ms: u64,
    pub frozen_ms: u64,
    pub requests: u64,
}

#[derive(Debug, Serialize)]
pub struct ServiceView {
    #[serde(flatten)]
    pub service: ServiceRecord,
    pub url: String,
    pub scaling: Scaling,
    pub deployments: Vec<DeploymentRecord>,
    /// Running now (in memory, exact).
    pub running: Vec<LiveInstanceView>,
    /// Instances being started right now.
    pub starting: u32,
    /// Requests held waiting for an instance right now.
    pub waiting: u32,
    /// Instances started because a request found none ready, over the service's life.
    pub cold_starts: u64,
    /// Recent instances with their final state and usage (from the database).
    pub instances: Vec<InstanceRecord>,
    /// Events of the last 24 hours by kind (`hoist events` lists them).
    pub events_24h: std::collections::BTreeMap<String, u64>,
}

impl Platform {
    pub async fn start(
        config: PlatformConfig,
        store: Arc<Store>,
        gateway: Arc<Gateway>,
    ) -> Result<Arc<Platform>, ControlError> {
        let secrets = MasterKey::load(&config.data_dir)?;
        // Versions before sealing kept sandbox state in DATA/run on disk; clean it up once.
        let legacy = config.data_dir.join("run");
        if std::fs::symlink_metadata(&legacy).is_ok_and(|m| m.is_dir()) {
            Sandboxes::new(&legacy)?.remove_stale().await;
            std::fs::remove_dir_all(&legacy)?;
        }
        // On a tmpfs: bundles hold the apps' environment in plain text.
        let run_dir = hoist_sandbox::runtime_dir(&config.data_dir)?;
        let sandboxes = Arc::new(Sandboxes::new(&run_dir)?);
        let builder = Builder::new(sandboxes.clone(), &config.data_dir);
        // Whatever an earlier run left (after kill -9) is cleaned before anything starts.
        sandboxes.remove_stale().await;
        sandboxes.prewarm();
        builder.remove_stale();
        store.stop_all_instances("server restarted")?;
        for c in store.fail_interrupted("interrupted by server restart")? {
            tracing::info!(deployment = %c.id, from = %c.from, "failed: interrupted by server restart");
        }
        let platform = Arc::new_cyclic(|weak| Platform {
            runtimes: Runtimes::new(config.runtime_cache.clone()),
            logs: LogHub::start(store.clone()),
            access_queue: std::sync::OnceLock::new(),
            build_slots: Semaphore::new(config.max_concurrent_builds.max(1)),
            warm: WarmPool::new(config.warm_pool),
            lifecycle: Default::default(),
            config,
            store,
            builder,
            sandboxes,
            gateway,
            secrets,
            build_stats: Default::default(),
            data_dir_size: Default::default(),
            services: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            stopping: TaskTracker::new(),
            activator: Arc::new(PlatformActivator {
                platform: weak.clone(),
                runtime: tokio::runtime::Handle::current(),
            }),
        });
        platform
            .store
            .set_log_cap(platform.config.retention.max_bytes_per_service);
        platform.seal_legacy_env()?;
        platform.restore()?;
        platform.start_observers();
        tokio::spawn(platform.clone().run_scaler());
        Ok(platform)
    }

    /// Brings every service back after a start: its pool, its live deployment (instances
    /// start on the first request, or at once up to the minimum), and a warm sandbox.
    fn restore(self: &Arc<Self>) -> Result<(), ControlError> {
        for svc in self.store.list_services()? {
            let scaling = svc.scaling.unwrap_or_default();
            let (env, revision) = self.service_env(&svc.name)?;
            self.logs
                .masks()
                .set(svc.name.as_str(), "env", crate::env::values(&env));
            let plan = svc
                .live_deployment
                .as_ref()
                .and_then(|id| self.store.get_deployment(id).ok().flatten())
                .and_then(|d| match self.plan_for(&d, &env, revision) {
                    Ok(plan) => Some(plan),
                    Err(reason) => {
                        tracing::warn!(service = %svc.name, deployment = %d.id, %reason, "live deployment cannot run");
                        None
                    }
                });
            let mut services = self.state();
            let state = self.ensure_state(&mut services, &svc.name, scaling);
            if let Some(plan) = plan {
                let plan = Arc::new(plan);
                state.live = Some(LiveDeployment {
                    id: plan.deployment.clone(),
                    plan: plan.clone(),
                    instances: Vec::new(),
                });
                state.pool.set_deployed(true);
                drop(services);
                self.refill_standby(plan);
            }
        }
        self.publish_routes();
        Ok(())
    }

    /// The service's state, made (with its gateway pool) if it is new.
    pub(crate) fn ensure_state<'a>(
        &self,
        services: &'a mut HashMap<ServiceName, ServiceState>,
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

    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, HashMap<ServiceName, ServiceState>> {
        self.services.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn logs(&self) -> &LogHub {
        &self.logs
    }

    pub fn runtimes(&self) -> &Runtimes {
        &self.runtimes
    }

    pub fn url(&self, name: &ServiceName) -> String {
        if self.config.gateway_port == 80 {
            format!("http://{name}.{}/", self.config.domain)
        } else {
            format!(
                "http://{name}.{}:{}/",
                self.config.domain, self.config.gateway_port
            )
        }
    }

    /// Hands the gateway a table of every service's pool in one atomic swap. Only needed when
    /// services come or go: instances change inside the pools.
    pub(crate) fn publish_routes(&self) {
        let services = self.state();
        let mut table = RoutingTable::new();
        for state in services.values() {
            table.insert(state.pool.clone());
        }
        drop(services);
        self.gateway.publish(table);
    }

    /// Whether deployment `id`'s pipeline is still running (it may be recorded live already
    /// while the switch and what follows it are under way).
    pub fn is_in_pipeline(&self, service: &ServiceName, id: &DeploymentId) -> bool {
        self.state()
            .get(service)
            .and_then(|s| s.pending.as_ref())
            .is_some_and(|(p, _)| p == id)
    }

    pub(crate) fn pool(&self, name: &ServiceName) -> Option<Arc<ServicePool>> {
        self.state().get(name).map(|s| s.pool.clone())
    }

    pub(crate) fn live_plan(
        &self,
        name: &ServiceName,
    ) -> Option<(Arc<InstancePlan>, Arc<ServicePool>)> {
        let services = self.state();
        let state = services.get(name)?;
        let live = state.live.as_ref()?;
        Some((live.plan.clone(), state.pool.clone()))
    }

    /// Adds a started instance to its deployment if that is still live; otherwise stops it.
    pub(crate) fn adopt(&self, plan: &InstancePlan, handle: InstanceHandle) -> bool {
        let mut services = self.state();
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
                true
            }
            None => {
                drop(services);
                self.stopping.spawn(handle.stop());
                false
            }
        }
    }

    pub(crate) fn note_start_failure(&self, name: &ServiceName) {
        if let Some(s) = self.state().get_mut(name) {
            s.last_start_failure = Some(std::time::Instant::now());
            s.failures_in_a_row = s.failures_in_a_row.saturating_add(1);
        }
    }

    pub fn service_view(&self, name: &ServiceName) -> Result<ServiceView, ControlError> {
        let service = self
            .store
            .get_service(name)?
            .ok_or_else(|| ControlError::ServiceNotFound(name.to_string()))?;
        let (running, starting, waiting, scaling, unrecorded_cold) = {
            let services = self.state();
            match services.get(name) {
                Some(state) => {
                    let running = state
                        .live
                        .iter()
                        .flat_map(|l| l.instances.iter().map(move |i| (l, i)))
                        .map(|(l, i)| live_view(&l.id, &i.shared))
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
        Ok(ServiceView {
            url: self.url(name),
            scaling,
            deployments: self.store.list_deployments(name)?,
            running,
            starting,
            waiting,
            cold_starts: self.store.cold_starts_total(name)? + unrecorded_cold,
            instances: self.store.list_instances(name, 20)?,
            events_24h: self
                .store
                .event_counts(name, hoist_store::now_ms() - 24 * 3600 * 1000)?
                .into_iter()
                .collect(),
            service,
        })
    }

    pub fn list(&self) -> Result<Vec<ServiceView>, ControlError> {
        let services = self.store.list_services()?;
        let mut views = Vec::with_capacity(services.len());
        for service in services {
            let (running, scaling) = {
                let state = self.state();
                match state.get(&service.name) {
                    Some(s) => (
                        s.live
                            .iter()
                            .flat_map(|l| l.instances.iter().map(move |i| (l, i)))
                            .map(|(l, i)| live_view(&l.id, &i.shared))
                            .collect(),
                        s.scaling,
                    ),
                    None => (Vec::new(), service.scaling.unwrap_or_default()),
                }
            };
            views.push(ServiceView {
                url: self.url(&service.name),
                scaling,
                deployments: self
                    .store
                    .list_deployments(&service.name)?
                    .into_iter()
                    .take(1)
                    .collect(),
                running,
                starting: 0,
                waiting: 0,
                cold_starts: 0,
                instances: Vec::new(),
                events_24h: Default::default(),
                service,
            });
        }
        Ok(views)
    }

    /// Changes how a service scales, at once and without a redeploy.
    pub fn scale(&self, name: &ServiceName, layer: &ScalingLayer) -> Result<Scaling, ControlError> {
        let service = self
            .store
            .get_service(name)?
            .ok_or_else(|| ControlError::ServiceNotFound(name.to_string()))?;
        let current = {
            let services = self.state();
            services
                .get(name)
                .map(|s| s.scaling)
                .unwrap_or_else(|| service.scaling.unwrap_or_default())
        };
        let next = current.apply(layer)?;
        self.store.set_service_scaling(name, &next)?;
        let mut services = self.state();
        let state = self.ensure_state(&mut services, name, next);
        state.scaling = next;
        state.pool.set_limits(limits(&next));
        Ok(next)
    }

    /// Takes a service to zero instances at once (requests in flight finish first). The next
    /// request starts one again; a persistent service's minimum comes back with the scaler.
    pub fn stop_service(&self, name: &ServiceName) -> Result<usize, ControlError> {
        if self.store.get_service(name)?.is_none() {
            return Err(ControlError::ServiceNotFound(name.to_string()));
        }
        let handles: Vec<InstanceHandle> = {
            let mut services = self.state();
            match services.get_mut(name) {
                Some(state) => {
                    state.pool.take_all();
                    state
                        .live
                        .as_mut()
                        .map(|l| l.instances.drain(..).collect())
                        .unwrap_or_default()
                }
                None => Vec::new(),
            }
        };
        let n = handles.len();
        for h in handles {
            self.stopping.spawn(h.drain_and_stop());
        }
        Ok(n)
    }

    /// Stops the service's instances, removes its route, images, logs and build caches.
    pub async fn delete(&self, name: &ServiceName) -> Result<(), ControlError> {
        if self.store.get_service(name)?.is_none() {
            return Err(ControlError::ServiceNotFound(name.to_string()));
        }
        let state = self.state().remove(name);
        self.publish_routes();
        let images: Vec<String> = self
            .store
            .list_deployments(name)?
            .into_iter()
            .filter_map(|d| d.image)
            .collect();
        if let Some(state) = state {
            state.pool.set_deployed(false);
            state.pool.take_all();
            if let Some((_, cancel)) = state.pending {
                cancel.cancel();
            }
            if let Some(live) = state.live {
                self.drop_standby(&live.plan.key()).await;
                for i in live.instances {
                    self.stopping.spawn(i.stop());
                }
            }
        }
        self.store.delete_service(name)?;
        // Lines still arriving from its stopping instances are dropped by the store, which
        // no longer knows the service, so its secrets need masking no more.
        self.logs.masks().forget(name.as_str());
        // Its package caches go with it: a later service of the same name is someone else.
        if let Err(e) = self.builder.remove_caches(name).await {
            tracing::warn!(service = %name, error = %e, "removing the build caches of a deleted service");
        }
        for image in images {
            if !self.store.image_in_use(&image)? {
                let path = self.layer_path(&image);
                let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(path)).await;
            }
        }
        Ok(())
    }

    pub(crate) fn layer_path(&self, digest: &str) -> PathBuf {
        self.config
            .data_dir
            .join("layers")
            .join(digest.replace(':', "-"))
    }

    /// The plan to run deployment `d` with the service env `env` (at `revision`).
    pub(crate) fn plan_for(
        &self,
        d: &DeploymentRecord,
        env: &EnvVars,
        revision: u64,
    ) -> Result<InstancePlan, String> {
        let spec: ServiceSpec = d
            .spec
            .clone()
            .ok_or_else(|| format!("deployment {} never resolved a spec", d.id))?;
        let collected = || {
            format!(
                "the image of deployment {} was garbage-collected (the images of the last {} deployments that went live are kept)",
                d.id, self.config.keep_images
            )
        };
        let image = d.image.as_deref().ok_or_else(collected)?;
        let layer = self.layer_path(image);
        if !layer.is_dir() {
            return Err(collected());
        }
        let runtime_rootfs = self
            .config
            .runtime_cache
            .join(spec.runtime.as_str())
            .join("rootfs");
        if !runtime_rootfs.is_dir() {
            return Err(format!(
                "runtime {} is not in the runtime cache",
                spec.runtime
            ));
        }
        Ok(InstancePlan {
            service: spec.name.clone(),
            deployment: d.id.clone(),
            layers: vec![layer, runtime_rootfs],
            env: crate::env::combined(&spec.env, env).map_err(|e| e.to_string())?,
            revision,
            spec,
        })
    }

    pub(crate) fn announce(
        &self,
        d: &DeploymentId,
        service: &ServiceName,
        state: DeploymentState,
        reason: Option<String>,
    ) {
        let url = (state == DeploymentState::Live).then(|| self.url(service));
        self.logs.announce(Event::Deployment {
            id: d.to_string(),
            service: service.to_string(),
            state: state.as_str().to_string(),
            reason,
            url,
        });
    }

    /// Graceful stop: every instance gets SIGTERM and a grace period.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        // Builds in progress are cancelled (their sandboxes removed) rather than orphaned.
        for state in self.state().values() {
            if let Some((_, cancel)) = &state.pending {
                cancel.cancel();
            }
            state.pool.set_deployed(false);
        }
        let handles: Vec<InstanceHandle> = self
            .state()
            .values_mut()
            .filter_map(|s| s.live.as_mut())
            .flat_map(|l| l.instances.drain(..))
            .collect();
        for h in handles {
            self.stopping.spawn(h.drain_and_stop());
        }
        self.warm.drain(&self.stopping);
        self.stopping.close();
        self.stopping.wait().await;
        self.sandboxes.shutdown().await;
    }

    /// An instance died: out of its deployment and its pool.
    pub(crate) fn instance_gone(
        &self,
        service: &ServiceName,
        deployment: &DeploymentId,
        instance: &InstanceId,
    ) {
        let mut services = self.state();
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

fn live_view(deployment: &DeploymentId, shared: &InstanceShared) -> LiveInstanceView {
    let up = &shared.upstream;
    let usage = up.usage();
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
    }
}
