//! The scaler: every tick it freezes instances idle for `idle_freeze`, stops those idle for
//! `idle_stop`, keeps a persistent service's minimum warm, writes instance state changes to
//! the database, and now and then adds usage to the daily totals. It runs beside the request
//! path, never on it: the gateway only reads atomics the scaler and the instances update.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hoist_core::{InstanceId, InstanceState, ServiceName};
use hoist_gateway::{Upstream, UpstreamState};
use hoist_store::{UsageDelta, now_ms, utc_day};

use crate::handle::{InstanceHandle, InstanceShared, record_usage};
use crate::platform::Platform;

const TICK: Duration = Duration::from_millis(100);
const FLUSH_EVERY: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Plan {
    freeze: Vec<(Arc<Upstream>, Arc<hoist_gateway::ServicePool>)>,
    thaw: Vec<(Arc<Upstream>, Arc<hoist_gateway::ServicePool>)>,
    stop: Vec<(ServiceName, InstanceId)>,
    start: Vec<ServiceName>,
    states: Vec<(InstanceId, InstanceState)>,
}

impl Platform {
    pub(crate) async fn run_scaler(self: Arc<Self>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut flushed = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.shutdown.cancelled() => {
                    self.flush_usage();
                    return;
                }
            }
            self.scale_once();
            if flushed.elapsed() >= FLUSH_EVERY {
                self.flush_usage();
                flushed = Instant::now();
            }
        }
    }

    pub(crate) fn scale_once(self: &Arc<Self>) {
        let mut plan = Plan::default();
        {
            let services = self.state();
            for (name, state) in services.iter() {
                let Some(live) = state.live.as_ref() else {
                    continue;
                };
                // A static site: the gateway answers everything, no minimum is kept warm.
                if live.plan.spec.is_static_only() {
                    continue;
                }
                let scaling = state.scaling;
                for h in &live.instances {
                    sync_state(&h.shared, &mut plan.states);
                }
                // The most idle instances are the ones above the minimum.
                let mut by_idle: Vec<&InstanceHandle> = live.instances.iter().collect();
                by_idle.sort_by_key(|h| std::cmp::Reverse(h.upstream().idle_for()));
                let min = scaling.min_instances as usize;
                let spare = by_idle.len().saturating_sub(min);
                for (k, h) in by_idle.iter().enumerate() {
                    let up = h.upstream();
                    let idle = up.idle_for();
                    let st = up.state();
                    if k < spare {
                        if idle >= scaling.idle_stop()
                            && matches!(st, UpstreamState::Ready | UpstreamState::Frozen)
                        {
                            plan.stop.push((name.clone(), h.id.clone()));
                        } else if idle >= scaling.idle_freeze() && st == UpstreamState::Ready {
                            plan.freeze.push((up.clone(), state.pool.clone()));
                        }
                    } else if st == UpstreamState::Frozen {
                        // Within the minimum of a persistent service: kept warm.
                        plan.thaw.push((up.clone(), state.pool.clone()));
                    }
                }
                let have = live.instances.len() + state.pool.starting() as usize;
                let backing_off = state.last_start_failure.is_some_and(|t| {
                    let wait = Duration::from_secs(1 << state.failures_in_a_row.min(5));
                    t.elapsed() < wait
                });
                if have < min && !backing_off {
                    for _ in have..min {
                        state.pool.begin_start();
                        plan.start.push(name.clone());
                    }
                }
            }
        }
        for (id, state) in plan.states {
            let _ = self.store.set_instance_state(&id, state, None);
        }
        for (up, pool) in plan.thaw {
            let _ = up.thaw();
            pool.wake();
        }
        for (up, pool) in plan.freeze {
            tokio::task::spawn_blocking(move || {
                if let Err(e) = up.freeze() {
                    tracing::warn!(instance = %up.instance, error = %e, "freezing idle instance");
                }
                // A request that came while the freezer worked is waiting: it thaws now.
                pool.wake();
            });
        }
        for name in plan.start {
            self.stopping
                .spawn(self.launcher.clone().start_for_pool(name, false));
        }
        for (name, id) in plan.stop {
            let handle = {
                let mut services = self.state();
                services.get_mut(&name).and_then(|s| {
                    s.pool.remove(id.as_str());
                    let live = s.live.as_mut()?;
                    let pos = live.instances.iter().position(|i| i.id == id)?;
                    Some(live.instances.remove(pos))
                })
            };
            if let Some(h) = handle {
                tracing::info!(service = %name, instance = %id, "stopping idle instance");
                self.stopping.spawn(h.drain_and_stop());
            }
        }
    }

    fn flush_usage(&self) {
        let (instances, colds) = {
            let mut services = self.state();
            let mut instances = Vec::new();
            let mut colds = Vec::new();
            for (name, state) in services.iter_mut() {
                if let Some(live) = state.live.as_ref() {
                    instances.extend(live.instances.iter().map(|i| i.shared.clone()));
                }
                let cold = state.pool.cold_starts();
                if cold > state.cold_recorded {
                    colds.push((name.clone(), cold - state.cold_recorded));
                    state.cold_recorded = cold;
                }
            }
            (instances, colds)
        };
        for shared in instances {
            record_usage(&self.store, &shared);
        }
        let day = utc_day(now_ms());
        for (name, n) in colds {
            let delta = UsageDelta {
                cold_starts: n,
                ..UsageDelta::default()
            };
            let _ = self.store.add_usage(&name, &day, &delta);
        }
    }
}

/// Queues a database write when the gateway moved an instance between ready and frozen.
fn sync_state(shared: &InstanceShared, out: &mut Vec<(InstanceId, InstanceState)>) {
    let now = match shared.upstream.state() {
        UpstreamState::Ready | UpstreamState::Freezing => InstanceState::Ready,
        UpstreamState::Frozen | UpstreamState::Thawing => InstanceState::Frozen,
        UpstreamState::Retired => return,
    };
    let mut recorded = shared
        .recorded_state
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if *recorded != now {
        *recorded = now;
        out.push((shared.id.clone(), now));
    }
}
