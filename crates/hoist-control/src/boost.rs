//! The startup CPU boost (issue 15): memory decides CPU, so a 256 MB instance gets 14 % of a
//! core, which made its boot (Python importing its modules, a framework reading its routes)
//! five times slower than the app's own. While an instance starts, from the moment its app
//! process runs until it answers HTTP and for a settle time after (the server's
//! `--startup-boost-settle`, 10 s by default), its quota is raised; then it goes back to its
//! memory's share. Cloud Run's "startup CPU boost" is the model.
//!
//! How much: the starting instances together get at most a budget, half the machine's cores
//! (at least one core), so starts never take the CPU from the instances that serve. The
//! budget is shared in the order the instances began: each gets the budget left split among
//! those still to be served, but at least one whole core while that much is left, and what is
//! left when less is. An instance whose normal share is already as large keeps it and takes
//! nothing from the budget. One that finds the budget spent keeps its normal share and gets
//! its part as soon as an earlier start's boost ends, if it is still starting or settling then.
//! Shares are recomputed whenever a boost begins or ends, so a quota never falls below the
//! memory's share, and the sum of the boosted ones never goes over the budget (quotas that
//! shrink are written before those that grow).
//!
//! The host side is [`CpuControl`]: a cgroup file on a real sandbox, a recorder in the tests.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hoist_core::InstanceId;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::seams::CpuControl;

/// One whole core: what a boosted instance gets at least while the budget has it.
const ONE_CORE: u32 = 1000;

/// How the boost is sized: the server's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoostConfig {
    /// Millicores all starting instances may have together.
    pub budget_millicores: u32,
    /// How long an instance stays boosted after it first answered.
    pub settle: Duration,
}

impl BoostConfig {
    /// Half of this machine's cores (at least one), and `settle`.
    pub fn for_this_machine(settle: Duration) -> BoostConfig {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        BoostConfig {
            budget_millicores: half_the_cores(cores),
            settle,
        }
    }
}

/// Half of `cores` in millicores, at least one core.
fn half_the_cores(cores: usize) -> u32 {
    u32::try_from(cores.saturating_mul(500))
        .unwrap_or(u32::MAX)
        .max(ONE_CORE)
}

/// Where one instance's boost stands, for `hoist status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BoostStatus {
    /// Its quota now.
    pub(crate) millicores: u32,
    /// Whether that is above its memory's share.
    pub(crate) boosted: bool,
    /// When the boost ends (milliseconds since the Unix epoch); `None` while the app has not
    /// answered yet.
    pub(crate) until_ms: Option<i64>,
}

struct Entry {
    id: InstanceId,
    /// Its memory's share.
    normal: u32,
    cpu: Arc<dyn CpuControl>,
    /// The quota written last.
    granted: u32,
    /// Set once the app answered: the boost ends then.
    until: Option<(Instant, i64)>,
}

/// The instances in their boost, in the order they began.
pub(crate) struct StartupBoost {
    config: BoostConfig,
    entries: Mutex<Vec<Entry>>,
    /// Wakes the timer when a boost gets its end time.
    changed: Notify,
}

/// A boost in progress; dropping it ends the boost (the start failed, the instance stopped)
/// if its timer has not already.
pub(crate) struct BoostGuard {
    boost: Arc<StartupBoost>,
    id: InstanceId,
}

impl BoostGuard {
    /// The app answered: the boost ends after the settle time.
    pub(crate) fn ready(&self) {
        self.boost.ready(&self.id);
    }

    /// The quota it has now.
    pub(crate) fn millicores(&self) -> Option<u32> {
        self.boost.status(&self.id).map(|s| s.millicores)
    }
}

impl Drop for BoostGuard {
    fn drop(&mut self) {
        self.boost.end(&self.id);
    }
}

/// The quota of each instance, in the order given (the order they began), for `budget`.
/// See the module's comment for the rule.
fn shares(budget: u32, normals: &[u32]) -> Vec<u32> {
    let mut left = budget;
    let mut out = Vec::with_capacity(normals.len());
    for (k, &normal) in normals.iter().enumerate() {
        let still = u32::try_from(normals.len() - k).unwrap_or(u32::MAX);
        let fair = (left / still).max(ONE_CORE).min(left);
        if fair > normal {
            left -= fair;
            out.push(fair);
        } else {
            out.push(normal);
        }
    }
    out
}

impl StartupBoost {
    pub(crate) fn new(config: BoostConfig) -> Arc<StartupBoost> {
        Arc::new(StartupBoost {
            config,
            entries: Mutex::new(Vec::new()),
            changed: Notify::new(),
        })
    }

    pub(crate) fn config(&self) -> BoostConfig {
        self.config
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the boost of instance `id`, whose memory buys `normal` millicores: its quota is
    /// raised (as far as the budget allows) before this returns, so call it before the app's
    /// process runs.
    pub(crate) fn begin(
        self: &Arc<Self>,
        id: InstanceId,
        normal: u32,
        cpu: Arc<dyn CpuControl>,
    ) -> BoostGuard {
        let mut entries = self.lock();
        entries.retain(|e| e.id != id);
        entries.push(Entry {
            id: id.clone(),
            normal,
            cpu,
            granted: normal,
            until: None,
        });
        self.rebalance(&mut entries);
        drop(entries);
        BoostGuard {
            boost: self.clone(),
            id,
        }
    }

    fn ready(&self, id: &InstanceId) {
        let settle = self.config.settle;
        let mut entries = self.lock();
        if let Some(e) = entries.iter_mut().find(|e| &e.id == id) {
            let settle_ms = i64::try_from(settle.as_millis()).unwrap_or(i64::MAX);
            e.until = Some((
                Instant::now() + settle,
                hoist_store::now_ms().saturating_add(settle_ms),
            ));
        }
        drop(entries);
        self.changed.notify_one();
    }

    /// Ends the boost of `id` now: its quota goes back to its memory's share and the budget
    /// it held goes to the others.
    fn end(&self, id: &InstanceId) {
        let mut entries = self.lock();
        let Some(pos) = entries.iter().position(|e| &e.id == id) else {
            return;
        };
        let e = entries.remove(pos);
        if e.granted != e.normal {
            set(&e, e.normal);
        }
        self.rebalance(&mut entries);
    }

    /// The boost of `id`, if it is in one.
    pub(crate) fn status(&self, id: &InstanceId) -> Option<BoostStatus> {
        self.lock()
            .iter()
            .find(|e| &e.id == id)
            .map(|e| BoostStatus {
                millicores: e.granted,
                boosted: e.granted > e.normal,
                until_ms: e.until.map(|(_, ms)| ms),
            })
    }

    /// Gives every entry its share, writing the quotas that shrink first so that the sum
    /// never goes over the budget in between.
    fn rebalance(&self, entries: &mut [Entry]) {
        let normals: Vec<u32> = entries.iter().map(|e| e.normal).collect();
        let want = shares(self.config.budget_millicores, &normals);
        for pass in [Pass::Shrink, Pass::Grow] {
            for (e, &w) in entries.iter_mut().zip(&want) {
                let applies = match pass {
                    Pass::Shrink => w < e.granted,
                    Pass::Grow => w > e.granted,
                };
                if applies && set(e, w) {
                    e.granted = w;
                }
            }
        }
    }

    /// Ends the boosts whose settle time is over, and returns when the next one ends.
    fn expire(&self, now: Instant) -> Option<Instant> {
        let mut entries = self.lock();
        let before = entries.len();
        let mut i = 0;
        while i < entries.len() {
            if entries[i].until.is_some_and(|(t, _)| t <= now) {
                let e = entries.remove(i);
                if e.granted != e.normal {
                    set(&e, e.normal);
                }
            } else {
                i += 1;
            }
        }
        if entries.len() != before {
            self.rebalance(&mut entries);
        }
        entries.iter().filter_map(|e| e.until.map(|(t, _)| t)).min()
    }

    /// The timer (the task `startup-boost`): ends each boost when its settle time is over.
    /// At a stop it leaves the quotas as they are: the instances are stopped next.
    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let next = self.expire(Instant::now());
            let sleep = async {
                match next {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sleep => {}
                _ = self.changed.notified() => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Pass {
    Shrink,
    Grow,
}

/// Writes `millicores` as the entry's quota; false (logged) when it could not be written,
/// which happens when the sandbox is already gone.
fn set(e: &Entry, millicores: u32) -> bool {
    match e.cpu.set_millicores(millicores) {
        Ok(()) => true,
        Err(err) => {
            tracing::debug!(instance = %e.id, millicores, error = %err, "setting the CPU quota");
            false
        }
    }
}

#[cfg(test)]
#[path = "boost_tests.rs"]
mod tests;
