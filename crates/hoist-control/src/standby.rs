//! Keeping the warm pool (see `warm`) stocked: after an instance starts or a deployment goes
//! live, a standby sandbox for its plan is made in the background, so the next cold start
//! only has to let the process run.

use std::sync::Arc;

use hoist_core::InstanceId;

use crate::handle::InstancePlan;
use crate::platform::Platform;
use crate::warm::{PlanKey, Standby};

impl Platform {
    pub(crate) fn take_standby(&self, key: &PlanKey) -> Option<Standby> {
        self.warm.take(key)
    }

    /// Makes a standby for `plan`'s deployment in the background, unless it has one (or one
    /// is being made). Beyond the pool's capacity the least recently used one is removed.
    pub(crate) fn refill_standby(self: &Arc<Self>, plan: Arc<InstancePlan>) {
        if self.shutdown.is_cancelled() || !self.warm.begin_fill(&plan.key()) {
            return;
        }
        let me = self.clone();
        self.stopping.spawn(async move {
            let id = InstanceId::generate();
            let standby = match me.create_sandbox(&plan, &id).await {
                Ok(launched) => Some(Standby { id, launched }),
                Err(reason) => {
                    tracing::warn!(service = %plan.service, %reason, "warm pool: could not prepare a sandbox");
                    None
                }
            };
            let wanted = !me.shutdown.is_cancelled() && me.services.is_current(&plan);
            for s in me.warm.made(&plan.key(), standby, wanted) {
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
}
