//! The warm pool: per recently used deployment, one sandbox that is fully set up (network
//! namespace, overlay root, cgroup, `crun create`) with its process waiting before its first
//! instruction. A cold start takes it and only has to let the process run, which is what keeps
//! scale-from-zero within a few milliseconds of the app's own boot.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hoist_core::{DeploymentId, InstanceId};
use tokio_util::task::TaskTracker;

use crate::Platform;
use crate::handle::InstancePlan;
use crate::seams::Created;

type PlanKey = (DeploymentId, u64);

pub(crate) struct Standby {
    pub(crate) id: InstanceId,
    pub(crate) launched: Created,
}

pub(crate) struct WarmPool {
    capacity: usize,
    /// Each standby, by the plan it was made from (deployment and environment revision),
    /// with when that plan last asked for one (for LRU eviction).
    slots: Mutex<HashMap<PlanKey, (Standby, Instant)>>,
    filling: Mutex<HashSet<PlanKey>>,
}

impl WarmPool {
    pub(crate) fn new(capacity: usize) -> WarmPool {
        WarmPool {
            capacity,
            slots: Mutex::new(HashMap::new()),
            filling: Mutex::new(HashSet::new()),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<PlanKey, (Standby, Instant)>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn filling(&self) -> std::sync::MutexGuard<'_, HashSet<PlanKey>> {
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
    pub(crate) fn take_standby(&self, key: &PlanKey) -> Option<Standby> {
        self.warm.slots().remove(key).map(|(s, _)| s)
    }

    /// Makes a standby for `plan`'s deployment in the background, unless it has one (or one
    /// is being made). Beyond the pool's capacity the least recently used one is removed.
    pub(crate) fn refill_standby(self: &Arc<Self>, plan: Arc<InstancePlan>) {
        if self.warm.capacity == 0 || self.shutdown.is_cancelled() {
            return;
        }
        {
            let mut slots = self.warm.slots();
            if let Some((_, used)) = slots.get_mut(&plan.key()) {
                *used = Instant::now();
                return;
            }
        }
        if !self.warm.filling().insert(plan.key()) {
            return;
        }
        let me = self.clone();
        self.stopping.spawn(async move {
            let id = InstanceId::generate();
            let made = me.create_sandbox(&plan, &id).await;
            me.warm.filling().remove(&plan.key());
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
                    plan.key(),
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

    /// Removes the standby of a plan that is no longer live.
    pub(crate) async fn drop_standby(&self, key: &PlanKey) {
        if let Some(s) = self.take_standby(key) {
            s.launched.sandbox.destroy().await;
        }
    }

    /// Whether the plan is the service's live one or that of the deployment being made.
    fn is_current(&self, plan: &InstancePlan) -> bool {
        self.state().get(&plan.service).is_some_and(|s| {
            s.live.as_ref().is_some_and(|l| l.plan.key() == plan.key())
                || s.pending
                    .as_ref()
                    .is_some_and(|(p, _)| p == &plan.deployment)
        })
    }
}
