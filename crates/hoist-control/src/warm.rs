//! The warm pool: per recently used deployment, one sandbox that is fully set up (network
//! namespace, overlay root, cgroup, `crun create`) with its process waiting before its first
//! instruction. A cold start takes it and only has to let the process run, which is what keeps
//! scale-from-zero within a few milliseconds of the app's own boot.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use hoist_core::{DeploymentId, InstanceId};
use tokio_util::task::TaskTracker;

use crate::seams::Created;

pub(crate) type PlanKey = (DeploymentId, u64);

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

    /// The standby made for `key`, taken out of the pool.
    pub(crate) fn take(&self, key: &PlanKey) -> Option<Standby> {
        self.slots().remove(key).map(|(s, _)| s)
    }

    /// Whether a standby for `key` should be made now: the pool keeps some, has none for
    /// `key` (one it has counts as used now) and none is being made. If so, it counts as
    /// being made until [`WarmPool::made`].
    pub(crate) fn begin_fill(&self, key: &PlanKey) -> bool {
        if self.capacity == 0 {
            return false;
        }
        if let Some((_, used)) = self.slots().get_mut(key) {
            *used = Instant::now();
            return false;
        }
        self.filling().insert(key.clone())
    }

    /// The standby for `key` is made (`Some`) or could not be (`None`). Kept if still
    /// `wanted`, the least recently used beyond capacity evicted; what is returned must be
    /// destroyed.
    pub(crate) fn made(
        &self,
        key: &PlanKey,
        standby: Option<Standby>,
        wanted: bool,
    ) -> Vec<Standby> {
        self.filling().remove(key);
        let Some(standby) = standby else {
            return Vec::new();
        };
        if !wanted {
            return vec![standby];
        }
        let mut evicted = Vec::new();
        let mut slots = self.slots();
        slots.insert(key.clone(), (standby, Instant::now()));
        while slots.len() > self.capacity {
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
        evicted
    }

    /// Removes every standby (server stop).
    pub(crate) fn drain(&self, tracker: &TaskTracker) {
        let all: Vec<Standby> = self.slots().drain().map(|(_, (s, _))| s).collect();
        for s in all {
            tracker.spawn(s.launched.sandbox.destroy());
        }
    }
}
