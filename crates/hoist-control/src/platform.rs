use std::path::PathBuf;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use hoist_build::{Builder, Runtimes};
use hoist_core::{
    DeploymentId, DeploymentState, EnvVars, Scaling, ScalingLayer, ServiceName, ServiceSpec,
};
use hoist_gateway::{Activator, Gateway, ServicePool};
use hoist_sandbox::Sandboxes;
use hoist_secrets::MasterKey;
use hoist_store::{DeploymentRecord, Store};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::ControlError;
use crate::events::Events;
use crate::handle::{InstanceHandle, InstancePlan};
use crate::images::Images;
use crate::instance::{Launcher, LauncherParts, StartFailure};
use crate::logs::{Event, LogHub};
use crate::seams::{Host, ImageBuilder};
pub(crate) use crate::services::{LiveDeployment, limits};
use crate::services::{ServiceMap, ServiceState, Services};
use crate::tasks::Tasks;
use crate::vault::EnvVault;
use crate::warm::WarmPool;

#[derive(Debug, Clone)]
pub struct PlatformConfig {
    pub data_dir: PathBuf,
    pub runtime_cache: PathBuf,
    /// Base of service URLs: `http://NAME.<domain>[:port]/`.
    pub domain: String,
    pub gateway_port: u16,
    /// Where the gateway listens: cron runs are requests to it.
    pub gateway_addr: std::net::SocketAddr,
    pub start_timeout: Duration,
    pub build_timeout: Duration,
    pub max_concurrent_builds: usize,
    /// Sandboxes kept created-but-not-started, one per recently used deployment.
    pub warm_pool: usize,
    /// Images kept per service: those of the most recent deployments that went live.
    pub keep_images: usize,
    pub retention: Retention,
    /// The startup CPU boost's budget and settle time.
    pub startup_boost: crate::boost::BoostConfig,
    /// How long a replaced deployment's static files keep answering after a switch (10
    /// minutes; shorter for tests, `hoist server --static-grace`).
    pub static_grace: Duration,
}

/// How long logs and events are kept, how many log bytes per service, and how often the
/// per-service metrics are sampled.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_age: Duration,
    pub max_bytes_per_service: u64,
    /// One minute; shorter only for tests, which cannot wait for minutes to pass.
    pub metrics_resolution: Duration,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            max_age: Duration::from_secs(7 * 24 * 60 * 60),
            max_bytes_per_service: hoist_store::LOG_BYTES_CAP,
            metrics_resolution: Duration::from_secs(60),
        }
    }
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
                // Tracked with the stopping instances: a server stop waits for the start.
                let start = platform.launcher.clone().start_for_pool(name, true);
                platform.stopping.spawn_on(start, &self.runtime);
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
    pub(crate) builder: Arc<dyn ImageBuilder>,
    pub(crate) gateway: Arc<Gateway>,
    /// The services' sealed environments.
    pub(crate) vault: EnvVault,
    pub(crate) build_stats: crate::stats::BuildStats,
    pub(crate) data_dir_size: crate::stats::DiskGauge,
    pub(crate) logs: LogHub,
    /// Where the gateway hands its access records; set when the observers start.
    pub(crate) access_queue: std::sync::OnceLock<Arc<crate::access::AccessQueue>>,
    pub(crate) services: Arc<Services>,
    pub(crate) build_slots: Semaphore,
    pub(crate) shutdown: CancellationToken,
    /// The background loops (scaler, metrics sampler, retention, disk gauge, log index),
    /// stopped by `shutdown` and waited for by [`Platform::shutdown`].
    pub(crate) tasks: Arc<Tasks>,
    pub(crate) events: Arc<Events>,
    /// The access writer and the log hub's writer: they run until the last line is stored,
    /// which is after the instances have stopped (see [`Platform::flush_logs`]).
    pub(crate) writers: Tasks,
    /// Instances being drained or stopped outside any service's live set: a graceful server
    /// stop waits for them, so none is left running without its cleanup.
    pub(crate) stopping: TaskTracker,
    /// Starts and supervises instances, with the warm pool.
    pub(crate) launcher: Arc<Launcher>,
    pub(crate) images: Images,
    pub(crate) lifecycle: crate::lifecycle::Lifecycle,
    /// Uploaded sources (`hoist deploy . --upload`): a bare git repository under the data dir.
    pub(crate) sources: hoist_build::SourceStore,
    /// The cron scheduler (runs as the task `cron`).
    pub(crate) cron: hoist_cron::Scheduler,
    pub(crate) cron_secrets: Arc<crate::cron_parts::CronSecrets>,
    /// Deploys waiting to start on push or poll, one queue per service.
    pub(crate) autodeploy: crate::queue::Queues,
    /// The static files' store (`DATA/static`), limits and grace time.
    pub(crate) static_files: crate::static_step::StaticFiles,
}

impl Platform {
    pub async fn start(
        config: PlatformConfig,
        store: Arc<Store>,
        gateway: Arc<Gateway>,
    ) -> Result<Arc<Platform>, ControlError> {
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
        let host = Host {
            sandboxes,
            builder: Arc::new(builder),
        };
        Platform::start_with(config, store, gateway, host).await
    }

    /// Starts the platform on `host`'s sandbox driver and image builder, which are ready
    /// (whatever an earlier run left is cleaned up).
    pub async fn start_with(
        config: PlatformConfig,
        store: Arc<Store>,
        gateway: Arc<Gateway>,
        host: Host,
    ) -> Result<Arc<Platform>, ControlError> {
        let secrets = MasterKey::load(&config.data_dir)?;
        let Host { sandboxes, builder } = host;
        store.stop_all_instances("server restarted")?;
        for c in store.fail_interrupted("interrupted by server restart")? {
            tracing::info!(deployment = %c.id, from = %c.from, "failed: interrupted by server restart");
        }
        let shutdown = CancellationToken::new();
        let stopping = TaskTracker::new();
        let writers = Tasks::new(CancellationToken::new());
        let logs = LogHub::start(store.clone(), &writers);
        let tasks = Arc::new(Tasks::new(shutdown.clone()));
        let vault = EnvVault::new(secrets, store.clone(), logs.masks().clone());
        let events = Arc::new(Events::new(
            store.clone(),
            logs.masks().clone(),
            tasks.clone(),
        ));
        let cron_secrets = Arc::new(crate::cron_parts::CronSecrets::default());
        let static_files = crate::static_step::StaticFiles {
            store: Arc::new(hoist_static::Store::open(config.data_dir.join("static"))?),
            limits: hoist_static::Limits::default(),
            grace: config.static_grace,
        };
        let cron = crate::cron_parts::scheduler(
            store.clone(),
            config.gateway_addr,
            config.domain.clone(),
            cron_secrets.clone(),
            events.clone(),
        );
        let platform = Arc::new_cyclic(|weak| {
            let services = Arc::new(Services::new(
                gateway.clone(),
                Arc::new(PlatformActivator {
                    platform: weak.clone(),
                    runtime: tokio::runtime::Handle::current(),
                }),
            ));
            let launcher = Arc::new(Launcher::new(LauncherParts {
                start_timeout: config.start_timeout,
                store: store.clone(),
                logs: logs.clone(),
                sandboxes,
                warm: WarmPool::new(config.warm_pool),
                services: services.clone(),
                events: events.clone(),
                stopping: stopping.clone(),
                shutdown: shutdown.clone(),
                cron_secrets: cron_secrets.clone(),
                boost: crate::boost::StartupBoost::new(config.startup_boost),
            }));
            Platform {
                runtimes: Runtimes::new(config.runtime_cache.clone()),
                logs,
                access_queue: std::sync::OnceLock::new(),
                build_slots: Semaphore::new(config.max_concurrent_builds.max(1)),
                images: Images::new(&config.data_dir),
                sources: hoist_build::SourceStore::new(&config.data_dir),
                config,
                store,
                builder,
                gateway: gateway.clone(),
                vault,
                build_stats: Default::default(),
                data_dir_size: Default::default(),
                events,
                tasks,
                writers,
                shutdown,
                stopping,
                services,
                launcher,
                lifecycle: Default::default(),
                cron,
                cron_secrets,
                autodeploy: Default::default(),
                static_files,
            }
        });
        platform
            .store
            .set_log_cap(platform.config.retention.max_bytes_per_service);
        platform.vault.seal_legacy()?;
        platform.restore()?;
        platform.start_observers();
        platform
            .tasks
            .spawn("scaler", platform.clone().run_scaler());
        // No instance survives a restart (the sandboxes' cleanup above kills every one), so
        // no quota is left raised by an earlier run: every boost is this timer's.
        platform.tasks.spawn(
            "startup-boost",
            platform
                .launcher
                .boost
                .clone()
                .run(platform.tasks.stopping().clone()),
        );
        // After the restore (the pools exist) and before anything is served: runs missed
        // while the server was down are recorded, the latest within the deadline runs.
        platform.cron.load()?;
        crate::cron_parts::spawn(&platform.tasks, platform.cron.clone());
        platform
            .tasks
            .spawn("autodeploy-poll", platform.clone().run_poller());
        Ok(platform)
    }

    /// Brings every service back after a start: its pool, its live deployment (instances
    /// start on the first request, or at once up to the minimum), and a warm sandbox.
    fn restore(self: &Arc<Self>) -> Result<(), ControlError> {
        for svc in self.store.list_services()? {
            let scaling = svc.scaling.unwrap_or_default();
            let (env, revision) = self.vault.open(&svc.name)?;
            self.logs
                .masks()
                .set(svc.name.as_str(), "env", crate::vault::values(&env));
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
            if let Err(e) = self.ensure_cron_secret(&svc.name) {
                tracing::warn!(service = %svc.name, error = %e, "reading the cron secret");
            }
            // The live deployment's files serve from the start, before any instance.
            let site = match plan {
                Some(_) => self.stored_site(&svc.name).unwrap_or_else(|reason| {
                    tracing::error!(service = %svc.name, %reason, "the live deployment's static files");
                    None
                }),
                None => None,
            };
            let mut services = self.state();
            let state = self.ensure_state(&mut services, &svc.name, scaling);
            state.pool.set_static(site);
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

    /// Whether deployment `id`'s pipeline is still running (it may be recorded live already
    /// while the switch and what follows it are under way).
    pub fn is_in_pipeline(&self, service: &ServiceName, id: &DeploymentId) -> bool {
        self.services.is_pending(service, id)
    }

    /// Changes how a service scales, at once and without a redeploy.
    pub fn scale(&self, name: &ServiceName, layer: &ScalingLayer) -> Result<Scaling, ControlError> {
        let service = self
            .store
            .get_service(name)?
            .ok_or_else(|| ControlError::ServiceNotFound(name.to_string()))?;
        // Read, applied and written under the services' lock: two scales at once each see the
        // other's result (a lost field otherwise), and a deploy's switch sees the last one.
        let mut services = self.state();
        let current = services
            .get(name)
            .map(|s| s.scaling)
            .unwrap_or_else(|| service.scaling.unwrap_or_default());
        let next = current.apply(layer)?;
        self.store.set_service_scaling(name, &next)?;
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
            // Connections still holding the pool get no more files of a deleted service.
            state.pool.set_static(None);
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
        self.forget_uploads(name).await?;
        // Its jobs went with its rows; the scheduler lets go of them too.
        self.cron.reload(name)?;
        self.cron_secrets.forget(name);
        // Lines still arriving from its stopping instances are dropped by the store, which
        // no longer knows the service, so its secrets need masking no more.
        self.logs.masks().forget(name.as_str());
        // Its package caches go with it: a later service of the same name is someone else.
        if let Err(e) = self.builder.remove_caches(name).await {
            tracing::warn!(service = %name, error = %e, "removing the build caches of a deleted service");
        }
        for image in images {
            if !self.store.image_in_use(&image)? {
                self.images.remove(&image).await;
            }
        }
        Ok(())
    }

    pub(crate) fn layer_path(&self, digest: &str) -> PathBuf {
        self.images.path(digest)
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
        // A spec stored before versions existed names a bare family: its old runtime.
        let entry = hoist_core::runtime_catalog::entry_for(&spec.runtime)
            .map_err(|e| format!("deployment {}: {e}", d.id))?;
        let runtime_rootfs = self.runtimes.rootfs(entry);
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
            env: crate::vault::combined(&spec.env, env).map_err(|e| e.to_string())?,
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

    /// Graceful stop: the background loops end (waited for), every instance gets SIGTERM and
    /// a grace period. The log writers go on until [`Platform::flush_logs`].
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tasks.stop().await;
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
        self.launcher.drain_standbys();
        self.stopping.close();
        self.stopping.wait().await;
        self.launcher.shutdown().await;
    }
}

/// Delegations for the pipeline (deploy.rs) and the switch (rollout.rs), which reach the
/// parts through the platform.
impl Platform {
    /// Starts an instance of `plan` (see [`Launcher::launch`]).
    pub(crate) async fn launch(
        &self,
        plan: Arc<InstancePlan>,
        cancel: Option<&CancellationToken>,
        cold: bool,
    ) -> Result<InstanceHandle, StartFailure> {
        self.launcher.launch(plan, cancel, cold).await
    }

    pub(crate) fn refill_standby(&self, plan: Arc<InstancePlan>) {
        self.launcher.refill_standby(plan)
    }

    pub(crate) async fn drop_standby(&self, key: &(DeploymentId, u64)) {
        self.launcher.drop_standby(key).await
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, ServiceMap> {
        self.services.lock()
    }

    /// The service's state, made (with its gateway pool) if it is new.
    pub(crate) fn ensure_state<'a>(
        &self,
        services: &'a mut ServiceMap,
        name: &ServiceName,
        scaling: Scaling,
    ) -> &'a mut ServiceState {
        self.services.ensure(services, name, scaling)
    }

    pub(crate) fn publish_routes(&self) {
        self.services.publish()
    }

    pub(crate) fn live_plan(
        &self,
        name: &ServiceName,
    ) -> Option<(Arc<InstancePlan>, Arc<ServicePool>)> {
        self.services.live_plan(name)
    }

    /// The service's own (secret) environment and its revision.
    pub(crate) fn service_env(&self, name: &ServiceName) -> Result<(EnvVars, u64), ControlError> {
        self.vault.open(name)
    }

    /// See [`EnvVault::update`].
    pub(crate) fn update_env(
        &self,
        name: &ServiceName,
        edit: impl Fn(&mut EnvVars) -> Result<(), ControlError>,
    ) -> Result<(EnvVars, u64, bool), ControlError> {
        self.vault.update(name, edit)
    }
}
