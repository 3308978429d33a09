//! Changing what a service runs without dropping a request: the switch to a new plan (a
//! deploy, an environment change, a rollback), and the garbage collection of images no
//! deployment can go back to.

use std::sync::Arc;

use hoist_core::{DeploymentId, DeploymentState, ServiceName};
use hoist_store::{DeploymentRecord, LogStream, NewLogLine, now_ms};
use tokio_util::sync::CancellationToken;

use crate::instance::{InstanceHandle, InstancePlan};
use crate::lifecycle::CancelReason;
use crate::platform::LiveDeployment;
use crate::services::ServiceState;
use crate::{ControlError, Platform};

/// Why a replacement did not happen.
#[derive(Debug)]
pub(crate) enum ReplaceError {
    /// The new instances did not start; the live ones keep serving.
    Start(String),
    /// Another switch happened meanwhile; this one would have undone it.
    Raced,
    /// The switch could not be recorded; nothing was switched.
    Record(String),
}

impl std::fmt::Display for ReplaceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplaceError::Start(reason) => f.write_str(reason),
            ReplaceError::Raced => f.write_str("the service changed again meanwhile"),
            ReplaceError::Record(reason) => f.write_str(reason),
        }
    }
}

impl Platform {
    /// Makes `plan` live with `instances` (ready, possibly none) in one step for the gateway:
    /// requests see the old instances or the new ones, never neither. The old instances
    /// finish the requests they have, then stop.
    ///
    /// `commit` runs first, under the services' lock, on the service's state: it checks that
    /// the switch still may happen (no newer deploy, rollback or change got there first) and
    /// records it; when it refuses, or the service is gone (`gone`), nothing is switched, the
    /// new instances are stopped and its error is returned.
    pub(crate) async fn switch_live<E>(
        self: &Arc<Self>,
        plan: Arc<InstancePlan>,
        instances: Vec<InstanceHandle>,
        commit: impl FnOnce(&mut ServiceState) -> Result<(), E>,
        gone: impl FnOnce() -> E,
    ) -> Result<(), E> {
        let upstreams: Vec<_> = instances.iter().map(|h| h.upstream().clone()).collect();
        let switched = {
            let mut services = self.state();
            match services.get_mut(&plan.service) {
                None => Err((instances, gone())),
                Some(state) => match commit(state) {
                    Err(e) => Err((instances, e)),
                    Ok(()) => {
                        state.failures_in_a_row = 0;
                        let old = state.live.replace(LiveDeployment {
                            id: plan.deployment.clone(),
                            plan: plan.clone(),
                            instances,
                        });
                        state.pool.replace_all(upstreams);
                        state.pool.set_deployed(true);
                        Ok(old)
                    }
                },
            }
        };
        let old = match switched {
            Err((instances, e)) => {
                for i in instances {
                    self.stopping.spawn(i.stop());
                }
                return Err(e);
            }
            Ok(old) => old,
        };
        self.publish_routes();
        if let Some(old) = old {
            if old.plan.key() != plan.key() {
                self.drop_standby(&old.plan.key()).await;
            }
            for i in old.instances {
                self.stopping.spawn(i.drain_and_stop());
            }
        }
        self.refill_standby(plan);
        Ok(())
    }

    /// Starts `n` instances of `plan` at once; the ones that started, and why the others did
    /// not.
    pub(crate) async fn launch_many(
        self: &Arc<Self>,
        plan: &Arc<InstancePlan>,
        n: usize,
        cancel: Option<&CancellationToken>,
    ) -> (Vec<InstanceHandle>, Vec<String>) {
        let mut started = tokio::task::JoinSet::new();
        for _ in 0..n {
            let me = self.clone();
            let plan = plan.clone();
            let cancel = cancel.cloned();
            started.spawn(async move { me.launch(plan, cancel.as_ref(), false).await });
        }
        let mut handles = Vec::new();
        let mut failures = Vec::new();
        while let Some(joined) = started.join_next().await {
            match joined {
                Ok(Ok(h)) => handles.push(h),
                Ok(Err(f)) => failures.push(f.reason),
                Err(e) => failures.push(format!("instance start panicked: {e}")),
            }
        }
        (handles, failures)
    }

    /// Replaces the live plan with `next` (same deployment or another): starts as many
    /// instances as are running now (at least the minimum, and at least one when `verify`,
    /// never more than the maximum: [`hoist_core::Scaling::target_instances`] of the
    /// service's settings), waits until they are ready, then switches, if the live plan is
    /// still the one it replaces; `record` runs in the same step, under the services' lock
    /// (a rollback records the switch there). Returns how many instances were replaced.
    pub(crate) async fn replace_live(
        self: &Arc<Self>,
        next: Arc<InstancePlan>,
        verify: bool,
        record: impl FnOnce() -> Result<(), String>,
    ) -> Result<usize, ReplaceError> {
        let (want, expect) = {
            let services = self.state();
            let state = services.get(&next.service);
            let running = state
                .and_then(|s| s.live.as_ref())
                .map_or(0, |l| l.instances.len());
            let scaling = state.map_or(next.spec.scaling, |s| s.scaling);
            (
                // A static site runs none: the switch is its files' alone.
                if next.spec.is_static_only() {
                    0
                } else {
                    scaling.target_instances(running, verify)
                },
                state.and_then(|s| s.live.as_ref()).map(|l| l.plan.key()),
            )
        };
        let (handles, mut failures) = self.launch_many(&next, want, None).await;
        if want > 0 && handles.is_empty() {
            return Err(ReplaceError::Start(
                failures
                    .pop()
                    .unwrap_or_else(|| "no instance started".into()),
            ));
        }
        let replaced = self
            .state()
            .get(&next.service)
            .and_then(|s| s.live.as_ref())
            .map_or(0, |l| l.instances.len());
        self.switch_live(
            next,
            handles,
            |state| {
                let current = state.live.as_ref().map(|l| l.plan.key());
                if expect.is_some() && current != expect {
                    return Err(ReplaceError::Raced);
                }
                record().map_err(ReplaceError::Record)
            },
            || ReplaceError::Raced,
        )
        .await?;
        Ok(replaced)
    }

    /// Makes an earlier deployment live again from its stored image, without a rebuild:
    /// `target`, or else the most recent one before the live one that went live.
    pub async fn rollback(
        self: &Arc<Self>,
        name: &ServiceName,
        target: Option<DeploymentId>,
    ) -> Result<DeploymentRecord, ControlError> {
        let service = self
            .store
            .get_service(name)?
            .ok_or_else(|| ControlError::ServiceNotFound(name.to_string()))?;
        let deployments = self.store.list_deployments(name)?;
        let live = service.live_deployment.clone();
        let chosen = match &target {
            Some(id) => deployments
                .iter()
                .find(|d| &d.id == id)
                .ok_or_else(|| {
                    ControlError::Rollback(format!(
                        "deployment {id} is not a deployment of service '{name}'"
                    ))
                })?,
            None => deployments
                .iter()
                .find(|d| d.state == DeploymentState::Superseded && d.image.is_some())
                .ok_or_else(|| {
                    ControlError::Rollback(format!(
                        "service '{name}' has no earlier deployment with a kept image to roll back to"
                    ))
                })?,
        };
        if live.as_ref() == Some(&chosen.id) {
            return Err(ControlError::Rollback(format!(
                "deployment {} is already live",
                chosen.id
            )));
        }
        if chosen.state != DeploymentState::Superseded {
            return Err(ControlError::Rollback(format!(
                "deployment {} never went live (it is {}); only deployments that served can be rolled back to",
                chosen.id, chosen.state
            )));
        }
        let (env, revision) = self.service_env(name)?;
        let plan = Arc::new(
            self.plan_for(chosen, &env, revision)
                .map_err(ControlError::Rollback)?,
        );
        // Like a deploy, the latest action wins: a build in progress is cancelled.
        let pending = self.state().get_mut(name).and_then(|s| s.pending.take());
        if let Some((id, cancel)) = pending {
            self.lifecycle.cancel(&id, &cancel, CancelReason::Rollback);
        }
        self.rollout_line(
            name,
            &chosen.id,
            format!("rolling back to deployment {}", chosen.id),
        );
        let recorded = || {
            self.go_live(name, &chosen.id, DeploymentState::Superseded)
                .map_err(|e| e.to_string())
        };
        let replaced = self
            .replace_live(plan.clone(), true, recorded)
            .await
            .map_err(|e| {
                ControlError::Rollback(match e {
                    ReplaceError::Start(reason) => format!(
                        "deployment {} did not start: {reason}; the live deployment keeps serving",
                        chosen.id
                    ),
                    ReplaceError::Raced => format!(
                        "another deploy, rollback or env change went live while deployment {} started; it was not switched to",
                        chosen.id
                    ),
                    ReplaceError::Record(reason) => format!(
                        "deployment {} was not switched to: {reason}",
                        chosen.id
                    ),
                })
            })?;
        // Its static files (and the grace of those it replaced) from the switch on record.
        self.publish_static(name).await;
        // Scaling is the service's setting, not the code's: it stays as it is now.
        self.store.set_service_spec(name, &plan.spec)?;
        // The code's cron jobs come back with it.
        if let Some(line) = self.apply_file_cron(name, &plan.spec.cron)? {
            self.rollout_line(name, &chosen.id, line);
        }
        self.rollout_line(
            name,
            &chosen.id,
            format!(
                "deployment {} is live again ({replaced} instance(s) replaced)",
                chosen.id
            ),
        );
        self.store
            .get_deployment(&chosen.id)?
            .ok_or_else(|| ControlError::DeploymentNotFound(chosen.id.to_string()))
    }

    /// Keeps the images of the service's `keep_images` most recent deployments that went
    /// live (and of any deployment still in progress) and removes the rest. Returns how many
    /// images were removed and the bytes freed.
    pub(crate) async fn collect_images(
        &self,
        name: &ServiceName,
    ) -> Result<(usize, u64), ControlError> {
        let deployments = self.store.list_deployments(name)?;
        let mut kept_successful = 0;
        let mut doomed = Vec::new();
        for d in deployments {
            let Some(image) = d.image.clone() else {
                continue;
            };
            let went_live = matches!(d.state, DeploymentState::Live | DeploymentState::Superseded);
            if d.state.is_in_progress() || d.state == DeploymentState::Live {
                if went_live {
                    kept_successful += 1;
                }
                continue;
            }
            if went_live && kept_successful < self.config.keep_images {
                kept_successful += 1;
                continue;
            }
            doomed.push((d.id, image));
        }
        let mut removed = 0;
        let mut freed = 0;
        for (id, image) in doomed {
            self.store.forget_image(&id)?;
            if self.store.image_in_use(&image)? {
                continue;
            }
            let path = self.layer_path(&image);
            let bytes = tokio::task::spawn_blocking(move || {
                let size = disk_usage(&path);
                std::fs::remove_dir_all(&path).map(|()| size)
            })
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
            match bytes {
                Ok(b) => {
                    removed += 1;
                    freed += b;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok((removed, freed))
    }

    pub(crate) fn rollout_line(&self, name: &ServiceName, deployment: &DeploymentId, line: String) {
        self.logs.try_write(NewLogLine {
            service: name.to_string(),
            deployment: Some(deployment.to_string()),
            instance: None,
            stream: LogStream::Build,
            ts: now_ms(),
            line: format!("==> {line}"),
        });
    }
}

/// Bytes a directory tree takes on disk (allocated blocks, symlinks not followed).
pub(crate) fn disk_usage(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let mut total = meta.blocks() * 512;
    if meta.is_dir()
        && let Ok(entries) = std::fs::read_dir(path)
    {
        for e in entries.flatten() {
            total += disk_usage(&e.path());
        }
    }
    total
}
