use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hoist_build::{Builder, Runtimes};
use hoist_core::{DeploymentId, DeploymentState, InstanceId, ServiceName, ServiceSpec};
use hoist_gateway::{Gateway, RoutingTable, Upstream};
use hoist_sandbox::Sandboxes;
use hoist_store::{DeploymentRecord, InstanceRecord, ServiceRecord, Store};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::instance::{InstanceHandle, InstancePlan};
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
}

/// What runs for one service: its live deployment and that deployment's instances.
#[derive(Default)]
pub(crate) struct ServiceState {
    pub(crate) live: Option<LiveDeployment>,
    /// The deployment being built, cancelled when a newer one arrives.
    pub(crate) pending: Option<(DeploymentId, CancellationToken)>,
}

pub(crate) struct LiveDeployment {
    pub(crate) id: DeploymentId,
    pub(crate) instances: Vec<InstanceHandle>,
}

pub struct Platform {
    pub(crate) config: PlatformConfig,
    pub(crate) store: Arc<Store>,
    pub(crate) runtimes: Runtimes,
    pub(crate) builder: Builder,
    pub(crate) sandboxes: Arc<Sandboxes>,
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) logs: LogHub,
    pub(crate) services: Mutex<HashMap<ServiceName, ServiceState>>,
    pub(crate) build_slots: Semaphore,
    pub(crate) shutdown: CancellationToken,
    /// Instances being drained or stopped outside any service's live set: a graceful server
    /// stop waits for them, so none is left running without its cleanup.
    pub(crate) stopping: TaskTracker,
}

#[derive(Debug, Serialize)]
pub struct InstanceView {
    #[serde(flatten)]
    pub record: InstanceRecord,
}

#[derive(Debug, Serialize)]
pub struct ServiceView {
    #[serde(flatten)]
    pub service: ServiceRecord,
    pub url: String,
    pub deployments: Vec<DeploymentRecord>,
    pub instances: Vec<InstanceRecord>,
}

impl Platform {
    pub async fn start(
        config: PlatformConfig,
        store: Arc<Store>,
        gateway: Arc<Gateway>,
    ) -> Result<Arc<Platform>, ControlError> {
        let sandboxes = Arc::new(Sandboxes::new(&config.data_dir.join("run"))?);
        let builder = Builder::new(sandboxes.clone(), &config.data_dir);
        // Whatever an earlier run left (after kill -9) is cleaned before anything starts.
        sandboxes.remove_stale().await;
        sandboxes.prewarm();
        builder.remove_stale();
        store.stop_all_instances("server restarted")?;
        for d in store.in_progress_deployments()? {
            store.set_deployment_state(
                &d.id,
                DeploymentState::Failed,
                Some("interrupted by server restart"),
            )?;
        }
        let platform = Arc::new(Platform {
            runtimes: Runtimes::new(config.runtime_cache.clone()),
            logs: LogHub::start(store.clone()),
            build_slots: Semaphore::new(config.max_concurrent_builds.max(1)),
            config,
            store,
            builder,
            sandboxes,
            gateway,
            services: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            stopping: TaskTracker::new(),
        });
        platform.restore().await?;
        Ok(platform)
    }

    /// Brings every service's live deployment back after a start.
    async fn restore(self: &Arc<Self>) -> Result<(), ControlError> {
        for svc in self.store.list_services()? {
            let Some(live) = svc.live_deployment else {
                self.state().entry(svc.name.clone()).or_default();
                continue;
            };
            let Some(d) = self.store.get_deployment(&live)? else {
                continue;
            };
            match self.plan_for(&d) {
                Some(plan) => {
                    let plan = Arc::new(plan);
                    {
                        let mut services = self.state();
                        services.entry(svc.name.clone()).or_default().live = Some(LiveDeployment {
                            id: d.id.clone(),
                            instances: Vec::new(),
                        });
                    }
                    // Same path as a crash: retried with back-off until it is up.
                    tokio::spawn(self.clone().replace(plan, Duration::ZERO));
                }
                None => {
                    tracing::warn!(service = %svc.name, deployment = %d.id, "live deployment has no usable image");
                    self.state().entry(svc.name.clone()).or_default();
                }
            }
        }
        self.publish_routes();
        Ok(())
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

    /// Rebuilds the routing table from the ready instances of live deployments and hands it
    /// to the gateway in one atomic swap.
    pub(crate) fn publish_routes(&self) {
        let services = self.state();
        let mut table = RoutingTable::new();
        for (name, state) in services.iter() {
            let upstreams: Vec<Arc<Upstream>> = state
                .live
                .as_ref()
                .map(|l| {
                    l.instances
                        .iter()
                        .filter_map(|i| i.ready_upstream())
                        .collect()
                })
                .unwrap_or_default();
            table.insert(name.as_str(), upstreams);
        }
        drop(services);
        self.gateway.publish(table);
    }

    pub fn service_view(&self, name: &ServiceName) -> Result<ServiceView, ControlError> {
        let service = self
            .store
            .get_service(name)?
            .ok_or_else(|| ControlError::ServiceNotFound(name.to_string()))?;
        Ok(ServiceView {
            url: self.url(name),
            deployments: self.store.list_deployments(name)?,
            instances: self.store.list_instances(name, 20)?,
            service,
        })
    }

    pub fn list(&self) -> Result<Vec<ServiceView>, ControlError> {
        self.store
            .list_services()?
            .into_iter()
            .map(|service| {
                Ok(ServiceView {
                    url: self.url(&service.name),
                    deployments: self
                        .store
                        .list_deployments(&service.name)?
                        .into_iter()
                        .take(1)
                        .collect(),
                    instances: Vec::new(),
                    service,
                })
            })
            .collect()
    }

    /// Stops the service's instances, removes its route, images and logs.
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
            if let Some((_, cancel)) = state.pending {
                cancel.cancel();
            }
            if let Some(live) = state.live {
                for i in live.instances {
                    self.stopping.spawn(i.stop());
                }
            }
        }
        self.store.delete_service(name)?;
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

    pub(crate) fn plan_for(&self, d: &DeploymentRecord) -> Option<InstancePlan> {
        let spec: ServiceSpec = d.spec.clone()?;
        let image = d.image.as_deref()?;
        let layer = self.layer_path(image);
        let runtime_rootfs = self
            .config
            .runtime_cache
            .join(spec.runtime.as_str())
            .join("rootfs");
        (layer.is_dir() && runtime_rootfs.is_dir()).then(|| InstancePlan {
            service: spec.name.clone(),
            deployment: d.id.clone(),
            layers: vec![layer, runtime_rootfs],
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
        }
        let handles: Vec<InstanceHandle> = self
            .state()
            .values_mut()
            .filter_map(|s| s.live.as_mut())
            .flat_map(|l| l.instances.drain(..))
            .collect();
        for h in handles {
            self.stopping.spawn(async move {
                let _ = h.stop().await;
            });
        }
        self.stopping.close();
        self.stopping.wait().await;
        self.sandboxes.shutdown().await;
    }

    pub(crate) fn instance_gone(
        &self,
        service: &ServiceName,
        deployment: &DeploymentId,
        instance: &InstanceId,
    ) -> bool {
        let mut services = self.state();
        let mut still_live = false;
        if let Some(live) = services.get_mut(service).and_then(|s| s.live.as_mut())
            && &live.id == deployment
        {
            still_live = true;
            live.instances.retain(|i| &i.id != instance);
        }
        drop(services);
        self.publish_routes();
        still_live
    }
}
