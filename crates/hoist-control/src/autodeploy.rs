//! Deploying again without a `hoist deploy`: a push announced by the git host's webhook (or
//! found by the poller, `poll.rs`) becomes a deploy of the service's last deploy request at
//! the pushed commit. Each service has one queue holding at most one waiting push: the deploy
//! runs after the service's deploy in progress ends, and a newer push replaces one still
//! waiting (deploying the older commit first would only be undone). The webhook's secret is
//! per service, sealed under the master key like the service env.

use std::sync::Arc;

use hoist_api_types::DeployRequest;
use hoist_core::{AutoDeploy, AutoDeploySettings, DeploymentTrigger, ServiceName, ServiceSpec};
use hoist_store::{DeploymentRecord, LogStream, NewLogLine, now_ms};

use crate::lifecycle::Change;
use crate::queue::Job;
use crate::{ControlError, Platform};

/// A push to a service's repository, as the webhook announced it (already authenticated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    /// The host's delivery id: a redelivery has the same one.
    pub delivery: String,
    /// `refs/heads/main`.
    pub git_ref: String,
    /// The commit the branch points at after the push.
    pub after: String,
    /// Every file the push's commits added, modified or removed; `None` when the payload
    /// lists no commits (a force push, or more commits than the host lists): then which
    /// files changed is unknown and the push deploys whatever the watch paths.
    pub files: Option<Vec<String>>,
}

/// What became of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// A deploy of `commit` is queued.
    Queued { commit: String },
    /// This delivery was seen before; nothing more is done.
    Duplicate,
    /// Nothing to deploy, and why (another branch, no watched file changed, auto-deploy off).
    Ignored(String),
}

/// The service's auto-deploy settings and the branch they watch, as its last resolved deploy
/// says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoDeployView {
    pub settings: AutoDeploySettings,
    pub branch: Option<String>,
}

/// The AEAD context of a webhook secret: sealed for one service, it opens for no other.
fn secret_context(name: &ServiceName) -> String {
    format!("webhook-secret:{name}")
}

/// Whether a deploy source is a git repository Hoist can fetch again by itself: a remote URL
/// or the absolute path of a repository on this machine.
fn is_git_source(source: &str) -> bool {
    // An upload's commit came from a client's repository the server cannot fetch again.
    hoist_core::uploaded_commit(source).is_none()
        && (hoist_core::is_remote_source(source) || std::path::Path::new(source).is_absolute())
}

impl Platform {
    /// The service's webhook secret, made now if it has none.
    pub fn ensure_webhook_secret(&self, name: &ServiceName) -> Result<String, ControlError> {
        if let Some(secret) = self.webhook_secret(name)? {
            return Ok(secret);
        }
        self.put_webhook_secret(name, false)?;
        // Of two first calls at once one secret was stored; both answer that one.
        self.webhook_secret(name)?
            .ok_or_else(|| ControlError::ServiceNotFound(name.to_string()))
    }

    /// Replaces the service's webhook secret with a new one; the old one stops working now.
    pub fn rotate_webhook_secret(&self, name: &ServiceName) -> Result<String, ControlError> {
        self.put_webhook_secret(name, true)?;
        self.webhook_secret(name)?
            .ok_or_else(|| ControlError::ServiceNotFound(name.to_string()))
    }

    fn put_webhook_secret(&self, name: &ServiceName, replace: bool) -> Result<(), ControlError> {
        if self.store.get_service(name)?.is_none() {
            return Err(ControlError::ServiceNotFound(name.to_string()));
        }
        let bytes: [u8; 32] = rand::random();
        let secret = hex::encode(bytes);
        let sealed = self
            .vault
            .seal_secret(&secret_context(name), secret.as_bytes())?;
        self.store.put_webhook_secret(name, &sealed, replace)?;
        Ok(())
    }

    /// The service's webhook secret, if it has one.
    pub fn webhook_secret(&self, name: &ServiceName) -> Result<Option<String>, ControlError> {
        let Some(sealed) = self.store.webhook_secret(name)? else {
            return Ok(None);
        };
        let plain = self.vault.open_secret(&secret_context(name), &sealed)?;
        String::from_utf8(plain)
            .map(Some)
            .map_err(|_| ControlError::CorruptEnv(name.to_string()))
    }

    /// The newest deployment of `name` that resolved a spec: the deploy a push repeats.
    pub(crate) fn deploy_basis(
        &self,
        name: &ServiceName,
    ) -> Result<(DeploymentRecord, ServiceSpec), ControlError> {
        if self.store.get_service(name)?.is_none() {
            return Err(ControlError::ServiceNotFound(name.to_string()));
        }
        let basis = self
            .store
            .list_deployments(name)?
            .into_iter()
            .find_map(|d| d.spec.clone().map(|spec| (d, spec)));
        match basis {
            Some((d, spec)) if is_git_source(&spec.source) => Ok((d, spec)),
            Some((d, _)) => Err(ControlError::NoGitSource(format!(
                "service '{name}' was deployed from an upload (deployment {}), not from a git repository Hoist can fetch: nothing to deploy on push",
                d.id
            ))),
            None => Err(ControlError::NoGitSource(format!(
                "service '{name}' has no deployment with a git source yet: deploy it once with `hoist deploy`"
            ))),
        }
    }

    /// `Ok` when `name` exists and has a git source a push can deploy from.
    pub fn check_git_source(&self, name: &ServiceName) -> Result<(), ControlError> {
        self.deploy_basis(name).map(|_| ())
    }

    /// The auto-deploy settings in force for `name`.
    pub fn auto_deploy_view(&self, name: &ServiceName) -> Result<AutoDeployView, ControlError> {
        match self.deploy_basis(name) {
            Ok((_, spec)) => Ok(AutoDeployView {
                settings: spec.auto_deploy,
                branch: spec.branch,
            }),
            Err(ControlError::NoGitSource(_)) => Ok(AutoDeployView {
                settings: AutoDeploySettings::default(),
                branch: None,
            }),
            Err(e) => Err(e),
        }
    }

    /// Takes a push (already authenticated) for `name`: queues a deploy of its commit if it
    /// is to the service's branch and touches a watched path, and the delivery is new.
    pub fn push(
        self: &Arc<Self>,
        name: &ServiceName,
        push: PushEvent,
    ) -> Result<PushOutcome, ControlError> {
        let (_, spec) = self.deploy_basis(name)?;
        let settings = &spec.auto_deploy;
        if settings.mode != AutoDeploy::Push {
            return Ok(PushOutcome::Ignored(format!(
                "auto-deploy is `{}` for service '{name}' (deploy with --auto-deploy push to deploy on push)",
                settings.mode
            )));
        }
        if !push.delivery.is_empty() && !self.store.record_delivery(name, &push.delivery)? {
            return Ok(PushOutcome::Duplicate);
        }
        let branch = spec.branch.as_deref().unwrap_or("HEAD");
        let wanted = format!("refs/heads/{branch}");
        if push.git_ref != wanted {
            return Ok(PushOutcome::Ignored(format!(
                "a push to {}; service '{name}' deploys {wanted}",
                push.git_ref
            )));
        }
        if push.after.bytes().all(|b| b == b'0') {
            return Ok(PushOutcome::Ignored(format!(
                "{wanted} was deleted; nothing to deploy"
            )));
        }
        if let Some(files) = &push.files
            && !settings.matches(files.iter().map(String::as_str))?
        {
            return Ok(PushOutcome::Ignored(format!(
                "none of the {} changed file(s) matches the watch paths ({})",
                files.len(),
                settings.watch.join(", ")
            )));
        }
        self.system_line(
            name,
            format!(
                "push {} to {branch}: deploying {}",
                push.delivery, push.after
            ),
        );
        self.enqueue(
            name,
            Job {
                commit: push.after.clone(),
                trigger: DeploymentTrigger::Push {
                    delivery: push.delivery,
                },
            },
        );
        Ok(PushOutcome::Queued { commit: push.after })
    }

    /// Puts `job` in the service's queue (replacing one waiting there) and makes sure its
    /// worker runs.
    pub(crate) fn enqueue(self: &Arc<Self>, name: &ServiceName, job: Job) {
        let (queue, new) = self.autodeploy.get(name);
        if let Some(old) = queue.put(job) {
            self.system_line(
                name,
                format!(
                    "the deploy of {} ({}) was superseded by a newer one before it started",
                    old.commit, old.trigger
                ),
            );
        }
        if new {
            self.tasks.spawn(
                "autodeploy-queue",
                self.clone().run_queue(name.clone(), queue),
            );
        }
    }

    /// One service's queue: waits for a job, then for the deploy in progress to end, then
    /// deploys the job (the newest one by then).
    async fn run_queue(self: Arc<Self>, name: ServiceName, queue: Arc<crate::queue::Queue>) {
        let stop = self.shutdown.clone();
        loop {
            tokio::select! {
                _ = queue.woken() => {}
                _ = stop.cancelled() => return,
            }
            if !self.wait_for_pipeline(&name).await {
                return;
            }
            let Some(job) = queue.take() else { continue };
            if let Err(e) = self.deploy_job(&name, &job).await {
                tracing::warn!(service = %name, commit = %job.commit, error = %e, "auto-deploy");
                self.system_line(
                    &name,
                    format!("could not deploy {} ({}): {e}", job.commit, job.trigger),
                );
            }
        }
    }

    /// Waits until `name` has no deploy in progress; `false` if the server is stopping.
    async fn wait_for_pipeline(&self, name: &ServiceName) -> bool {
        loop {
            // Subscribed before looking, so an end between the two is not missed.
            let mut changes = self.lifecycle.subscribe();
            let pending = self
                .state()
                .get(name)
                .and_then(|s| s.pending.as_ref().map(|(id, _)| id.clone()));
            let Some(id) = pending else { return true };
            loop {
                tokio::select! {
                    change = changes.recv() => match change {
                        Ok(Change::PipelineOver { id: done, .. }) if done == id => break,
                        Ok(_) => {}
                        // Fell behind: look again.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return false,
                    },
                    _ = self.shutdown.cancelled() => return false,
                }
            }
        }
    }

    /// The service's last deploy request again, at `job`'s commit. Its `--env` values joined
    /// the service env when it went live and its scaling flags the service's settings, so
    /// neither is repeated (a `hoist scale` since must not be undone by a push).
    async fn deploy_job(
        self: &Arc<Self>,
        name: &ServiceName,
        job: &Job,
    ) -> Result<(), ControlError> {
        let (basis, spec) = self.deploy_basis(name)?;
        // Requests recorded by older servers list the fields not given as `null`.
        let mut recorded = basis.request.clone();
        if let Some(fields) = recorded.as_object_mut() {
            fields.retain(|_, v| !v.is_null());
        }
        let mut req: DeployRequest = hoist_api_types::from_json_value(recorded).map_err(|e| {
            ControlError::NoGitSource(format!(
                "the request of deployment {} cannot be made again: {e}",
                basis.id
            ))
        })?;
        req.name = Some(name.to_string());
        req.branch = spec.branch.clone();
        req.env.clear();
        req.scaling = Default::default();
        let d = self
            .deploy_by(req, job.trigger.clone(), Some(job.commit.clone()))
            .await?;
        tracing::info!(service = %name, deployment = %d.id, commit = %job.commit, trigger = %job.trigger, "auto-deploy started");
        Ok(())
    }

    pub(crate) fn system_line(&self, name: &ServiceName, line: String) {
        self.logs.try_write(NewLogLine {
            service: name.to_string(),
            deployment: None,
            instance: None,
            stream: LogStream::System,
            ts: now_ms(),
            line,
        });
    }
}
