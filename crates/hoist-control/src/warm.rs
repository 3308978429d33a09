//! The warm pool: per recently used deployment, one sandbox that is fully set up (network
//! namespace, overlay root, cgroup, `crun create`) with its process waiting before its first
//! instruction. A cold start takes it and only has to let the process run, which is what keeps
//! scale-from-zero within a few milliseconds of the app's own boot.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hoist_core::{DeploymentId, InstanceId};
use hoist_sandbox::Launched;
use tokio_util::task::TaskTracker;

use crate::Platform;
use crate::instance::InstancePlan;

pub(crate) struct Standby {
    pub(crate) id: InstanceId,
    pub(crate) launched: Launched,
}

pub(crate) struct WarmPool {
    capacity: usize,
    /// Each standby with when its deployment last asked for one (for LRU eviction).
    slots: Mutex<HashMap<DeploymentId, (Standby, Instant)>>,
    filling: Mutex<HashSet<DeploymentId>>,
}

impl WarmPool {
    pub(crate) fn new(capacity: usize) -> WarmPool {
        WarmPool {
            capacity,
            slots: Mutex::new(HashMap::new()),
            filling: Mutex::new(HashSet::new()),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<DeploymentId, (Standby, Instant)>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn filling(&self) -> std::sync::MutexGuard<'_, HashSet<DeploymentId>> {
        self.filling.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes every standby (server stop).
    pub(crate) fn drain(&self, tracker: &TaskTracker) {
        let all: Vec<Standby> = self.slots().drain().map(|(_, (s, _))| s).collect();
        for s in all {
            tracker.spawn(s.launched.sandbox.destroy());
        }
    }
}

impl Platform {
    pub(crate) fn take_standby(&self, deployment: &DeploymentId) -> Option<Standby> {
        self.warm.slots().remove(deployment).map(|(s, _)| s)
    }

    /// Makes a standby for `plan`'s deployment in the background, unless it has one (or one
    /// is being made). Beyond the pool's capacity the least recently used one is removed.
    pub(crate) fn refill_standby(self: &Arc<Self>, plan: Arc<InstancePlan>) {
        if self.warm.capacity == 0 || self.shutdown.is_cancelled() {
            return;
        }
        {
            let mut slots = self.warm.slots();
            if let Some((_, used)) = slots.get_mut(&plan.deployment) {
                *used = Instant::now();
                return;
            }
        }
        if !self.warm.filling().insert(plan.deployment.clone()) {
            return;
        }
        let me = self.clone();
        self.stopping.spawn(async move {
            let id = InstanceId::generate();
            let made = me.create_sandbox(&plan, &id).await;
            me.warm.filling().remove(&plan.deployment);
            let launched = match made {
                Ok(l) => l,
                Err(reason) => {
                    tracing::warn!(service = %plan.service, %reason, "warm pool: could not prepare a sandbox");
                    return;
                }
            };
            let wanted = !me.shutdown.is_cancelled() && me.is_current(&plan);
            let mut evicted = Vec::new();
            if wanted {
                let mut slots = me.warm.slots();
                slots.insert(
                    plan.deployment.clone(),
                    (Standby { id, launched }, Instant::now()),
                );
                while slots.len() > me.warm.capacity {
                    let Some(oldest) = slots
                        .iter()
                        .min_by_key(|(_, (_, used))| *used)
                        .map(|(d, _)| d.clone())
                    else {
                        break;
                    };
                    if let Some((s, _)) = slots.remove(&oldest) {
                        evicted.push(s);
                    }
                }
            } else {
                evicted.push(Standby { id, launched });
            }
            for s in evicted {
                s.launched.sandbox.destroy().await;
            }
        });
    }

    /// Removes the standby of a deployment that is no longer live.
    pub(crate) async fn drop_standby(&self, deployment: &DeploymentId) {
        if let Some(s) = self.take_standby(deployment) {
            s.launched.sandbox.destroy().await;
        }
    }

    /// Whether the plan's deployment is the service's live one or the one being deployed.
    fn is_current(&self, plan: &InstancePlan) -> bool {
        self.state().get(&plan.service).is_some_and(|s| {
            s.live.as_ref().is_some_and(|l| l.id == plan.deployment)
                || s.pending
                    .as_ref()
                    .is_some_and(|(p, _)| p == &plan.deployment)
        })
    }
}
