//! A deploy accepted ([`Platform::deploy`]) and its pipeline, as a sequence of stages:
//! fetch -> build -> start -> switch. Each stage is a function that takes the previous stage's output and returns the
//! next one's input; [`Run::drive`] is the loop that records each stage's state as it enters
//! it and hands the output on. Any failure leaves the previous deployment serving.

use std::sync::Arc;

use hoist_build::{BuildError, BuildRequest, LogSink, OutputStream, RuntimeImage, fetch_at};
use hoist_core::{
    DeploymentId, DeploymentState, DeploymentTrigger, EnvVars, Scaling, ScalingLayer, ServiceName,
    ServiceSpec, SpecError,
};
use hoist_store::{DeploymentRecord, NewLogLine, StoreError, now_ms};
use tokio::sync::SemaphorePermit;
use tokio_util::sync::CancellationToken;

use hoist_api_types::DeployRequest;

use crate::deploy::{Validated, redacted, resolve_spec, validate};
use crate::instance::{InstanceHandle, InstancePlan};
use crate::lifecycle::CancelReason;
use crate::{ControlError, Platform};

/// Why a deployment did not go live. The text is what users see as its `failure_reason`.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("cancelled: {0}")]
    Cancelled(CancelReason),
    /// Getting the source: the clone or fetch, or the directory it goes to.
    #[error(transparent)]
    Fetch(BuildError),
    /// The runtime image or the build command.
    #[error(transparent)]
    Build(BuildError),
    /// The first instance did not start (or did not answer).
    #[error("{0}")]
    Start(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The spec the files and flags resolve to, or the environment made from it.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The service's stored environment could not be read or updated.
    #[error(transparent)]
    Env(ControlError),
    /// The static folder: missing after the build, over the limits, or not stored.
    #[error(transparent)]
    Static(#[from] crate::static_step::StaticStepError),
}

impl From<ControlError> for DeployError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Store(e) => DeployError::Store(e),
            ControlError::Invalid(e) => DeployError::Spec(e),
            other => DeployError::Env(other),
        }
    }
}

/// Where a pipeline is, with what the stage needs from the one before.
enum Stage<'a> {
    Fetch(SemaphorePermit<'a>),
    // Boxed: the spec and env are large next to the other stages' inputs.
    Build(Box<Fetched<'a>>),
    Start(Built),
    Switch(Started),
}

impl Stage<'_> {
    /// The state a deployment is in while the stage runs.
    fn state(&self) -> DeploymentState {
        match self {
            Stage::Fetch(_) => DeploymentState::Fetching,
            Stage::Build(_) => DeploymentState::Building,
            Stage::Start(_) => DeploymentState::Starting,
            // Recorded by the switch itself, once the new instances answer.
            Stage::Switch(_) => DeploymentState::Starting,
        }
    }
}

/// The source checked out and the spec resolved from it.
struct Fetched<'a> {
    /// A build slot, held until the build ends.
    slot: SemaphorePermit<'a>,
    build_id: String,
    spec: ServiceSpec,
    /// What the instances get: the repository's env, the service's, this deploy's flags.
    env: EnvVars,
    /// The service env's revision that `env` holds.
    revision: u64,
    /// The scaling settings the deploy names (see [`Run::scaling`]).
    scaling: ScalingLayer,
    /// The runtime version chosen, and why.
    runtime: crate::runtime_choice::RuntimeChoice,
}

/// The image built.
struct Built {
    plan: Arc<InstancePlan>,
    /// The static folder taken from it, if any.
    taken: Option<crate::static_step::Taken>,
}

/// Instances of the new deployment that answer (none for a static site).
struct Started {
    plan: Arc<InstancePlan>,
    handles: Vec<InstanceHandle>,
    taken: Option<crate::static_step::Taken>,
}

/// One deployment's pipeline.
pub(crate) struct Run {
    platform: Arc<Platform>,
    id: DeploymentId,
    v: Validated,
    sink: LogSink,
    cancel: CancellationToken,
    /// The state recorded now: each change is made from it.
    state: DeploymentState,
    /// The scaling settings this deploy names, applied onto the service's own when it
    /// starts instances and when it switches.
    scaling: ScalingLayer,
}

/// The service's settings `current` with what a deploy names on top; when the two no longer
/// fit together (a `hoist scale` made while the deploy built), the service's own win.
fn scaling_over(current: Scaling, deploy: &ScalingLayer) -> Scaling {
    current.apply(deploy).unwrap_or(current)
}

impl Run {
    /// Runs the pipeline to its end and records the outcome. Never fails: whatever went wrong
    /// is the deployment's failure (or cancellation), in its state and its build log.
    pub(crate) async fn run(
        platform: Arc<Platform>,
        id: DeploymentId,
        v: Validated,
        cancel: CancellationToken,
    ) {
        let sink = platform.build_sink(&v.name, &id);
        // The flags' env reaches the build and the first instances before it joins the
        // service env: its values are masked in the log from the start.
        let mask_source = format!("deploy {id}");
        platform
            .logs
            .masks()
            .set(v.name.as_str(), &mask_source, crate::env::values(&v.env));
        let mut run = Run {
            platform: platform.clone(),
            id,
            v,
            sink,
            cancel,
            state: DeploymentState::Queued,
            scaling: ScalingLayer::default(),
        };
        // Each stage watches the token itself and cleans up what it started (a sandbox, a git
        // process); dropping the whole pipeline mid-await would leak them.
        let outcome = run.drive().await;
        if let Err(e) = outcome {
            run.record_failure(e);
        }
        let Run { id, v, .. } = run;
        platform.lifecycle.take_reason(&id);
        platform
            .builder
            .discard(&format!("b-{}", id.as_str().trim_start_matches("d-")));
        // Live, the values are the service env's now (masked as that); failed or cancelled,
        // they were never anybody's. Either way this run's lines are masked as they are
        // stored, so the values stay in the mask until every line queued so far is stored.
        platform.logs.flushed().await;
        platform.logs.masks().clear(v.name.as_str(), &mask_source);
        {
            let mut services = platform.state();
            if let Some(s) = services.get_mut(&v.name)
                && s.pending.as_ref().is_some_and(|(p, _)| p == &id)
            {
                s.pending = None;
            }
        }
        platform.pipeline_over(&v.name, &id);
    }

    /// The loop over the stages.
    async fn drive(&mut self) -> Result<(), DeployError> {
        let platform = self.platform.clone();
        let mut stage = Stage::Fetch(self.wait_for_slot(&platform).await?);
        loop {
            let state = stage.state();
            if state != self.state {
                self.enter(state)?;
            }
            stage = match stage {
                Stage::Fetch(slot) => {
                    let fetched = self.fetch(slot).await?;
                    self.scaling = fetched.scaling;
                    Stage::Build(Box::new(fetched))
                }
                Stage::Build(fetched) => Stage::Start(self.build(*fetched).await?),
                Stage::Start(built) => Stage::Switch(self.start(built).await?),
                Stage::Switch(started) => return self.switch(started).await,
            };
        }
    }

    fn log(&self, line: String) {
        (self.sink)(OutputStream::System, line);
    }

    fn enter(&mut self, to: DeploymentState) -> Result<(), StoreError> {
        self.platform
            .transition(&self.v.name, &self.id, self.state, to, None)?;
        self.state = to;
        Ok(())
    }

    /// Whatever stage noticed a cancellation, the reason is why it was cancelled.
    fn cancelled(&self) -> DeployError {
        let why = self.platform.lifecycle.take_reason(&self.id).unwrap_or(
            if self.platform.shutdown.is_cancelled() {
                CancelReason::ServerStopping
            } else {
                // The one canceller that records no reason: the service's deletion.
                CancelReason::ServiceDeleted
            },
        );
        DeployError::Cancelled(why)
    }

    fn record_failure(&mut self, e: DeployError) {
        let e = if self.cancel.is_cancelled() && !matches!(e, DeployError::Cancelled(_)) {
            self.cancelled()
        } else {
            e
        };
        let to = match e {
            DeployError::Cancelled(_) => DeploymentState::Cancelled,
            _ => DeploymentState::Failed,
        };
        let reason = e.to_string();
        self.log(format!("deployment {} {}: {reason}", self.id, to.as_str()));
        // A refusal is logged where it happens; the deployment is then left as it was.
        if self
            .platform
            .transition(&self.v.name, &self.id, self.state, to, Some(&reason))
            .is_ok()
        {
            self.state = to;
        }
    }

    async fn wait_for_slot<'p>(
        &self,
        platform: &'p Platform,
    ) -> Result<SemaphorePermit<'p>, DeployError> {
        tokio::select! {
            permit = platform.build_slots.acquire() => {
                permit.map_err(|_| DeployError::Cancelled(CancelReason::ServerStopping))
            }
            _ = self.cancel.cancelled() => Err(self.cancelled()),
        }
    }

    async fn fetch<'p>(&self, slot: SemaphorePermit<'p>) -> Result<Fetched<'p>, DeployError> {
        let (platform, v, id) = (&self.platform, &self.v, &self.id);
        let build_id = format!("b-{}", id.as_str().trim_start_matches("d-"));
        let src = platform.builder.source_dir(&build_id);
        if let Some(parent) = src.parent() {
            std::fs::create_dir_all(parent).map_err(|source| {
                DeployError::Fetch(BuildError::Io {
                    context: "preparing the build directory".into(),
                    source,
                })
            })?;
        }
        // An upload's commit is in the server's own source store already.
        let upload = hoist_core::uploaded_commit(&v.source);
        self.log(match upload {
            Some(commit) => format!("checking out uploaded commit {commit}"),
            None => format!(
                "fetching {} ({})",
                hoist_core::redact_credentials(&v.source),
                v.branch.as_deref().unwrap_or("default branch")
            ),
        });
        let get = async {
            match upload {
                Some(commit) => {
                    platform
                        .checkout_upload(commit, &src, v.branch.as_deref())
                        .await
                }
                None => fetch_at(&v.source, v.branch.as_deref(), v.commit.as_deref(), &src).await,
            }
        };
        let fetched = tokio::select! {
            f = get => f.map_err(DeployError::Fetch)?,
            _ = self.cancel.cancelled() => return Err(self.cancelled()),
        };
        platform
            .store
            .set_deployment_source(id, &fetched.commit, &fetched.branch)?;
        self.log(format!(
            "commit {} on branch {}",
            fetched.commit, fetched.branch
        ));

        // Component by component, never through a symlink: the repository decides what its
        // tree holds, and a link must not make the server read a host directory.
        let app_root = v.root.resolve_in(&src)?;
        let (base, current_runtime) = platform
            .state()
            .get(&v.name)
            .map(|s| {
                let live = s.live.as_ref().map(|l| l.plan.spec.runtime.clone());
                (s.scaling, live)
            })
            .unwrap_or_default();
        let resolved = resolve_spec(
            &app_root,
            v,
            &fetched.branch,
            base,
            current_runtime.as_ref(),
            &self.sink,
        )?;
        let (spec, scaling, runtime) = (resolved.spec, resolved.scaling, resolved.runtime);
        platform.store.set_deployment_spec(id, &spec)?;
        // Made before the first instance starts: it gets the secret as HOIST_CRON_SECRET.
        platform.ensure_cron_secret(&v.name)?;
        let (service_env, revision) = platform.service_env(&v.name)?;
        let mut deploy_env = service_env;
        deploy_env.merge(v.env.clone());
        let env = crate::env::combined(&spec.env, &deploy_env)?;
        Ok(Fetched {
            slot,
            build_id,
            spec,
            env,
            revision,
            scaling,
            runtime,
        })
    }

    async fn build(&self, f: Fetched<'_>) -> Result<Built, DeployError> {
        let (platform, v, id) = (&self.platform, &self.v, &self.id);
        let runtime: RuntimeImage = platform
            .runtimes
            .ensure(f.runtime.entry, &self.sink)
            .await
            .map_err(DeployError::Build)?;
        self.log(f.runtime.line(&runtime.version));
        if let Some(warning) = f.runtime.warning() {
            self.log(warning);
        }
        f.runtime.check_exact(&runtime.version)?;
        let build_started = std::time::Instant::now();
        let output = platform
            .builder
            .build(
                BuildRequest {
                    id: f.build_id,
                    service: v.name.clone(),
                    runtime: runtime.clone(),
                    root_dir: v.root.as_str().to_string(),
                    build_command: f.spec.build_command.clone(),
                    env: f
                        .env
                        .iter()
                        .map(|(k, val)| (k.to_string(), val.to_string()))
                        .collect(),
                    timeout: platform.config.build_timeout,
                    cancel: self.cancel.clone(),
                },
                &self.sink,
            )
            .await;
        platform.build_stats.record(
            match &output {
                Ok(_) => crate::metrics::BuildOutcome::Succeeded,
                Err(_) if self.cancel.is_cancelled() => crate::metrics::BuildOutcome::Cancelled,
                Err(_) => crate::metrics::BuildOutcome::Failed,
            },
            build_started.elapsed(),
        );
        let output = output.map_err(DeployError::Build)?;
        platform
            .store
            .set_deployment_image(id, &output.layer.digest, &runtime.version)?;
        // The next deploy may build while this one starts.
        drop(f.slot);
        let sink = self.sink.clone();
        let log = move |line: String| sink(OutputStream::System, line);
        let taken = tokio::select! {
            t = platform.take_static(id, &f.spec, &output.layer.path, &log) => t?,
            _ = self.cancel.cancelled() => return Err(self.cancelled()),
        };
        if f.spec.is_static_only() && taken.is_none() {
            return Err(ServiceSpec::nothing_to_run().into());
        }
        Ok(Built {
            taken,
            plan: Arc::new(InstancePlan {
                service: v.name.clone(),
                deployment: id.clone(),
                layers: vec![output.layer.path.clone(), runtime.rootfs.clone()],
                env: f.env,
                revision: f.revision,
                spec: f.spec,
            }),
        })
    }

    async fn start(&self, b: Built) -> Result<Started, DeployError> {
        let platform = &self.platform;
        let plan = b.plan;
        let taken = b.taken;
        if plan.spec.is_static_only() {
            self.log("a static site: no instance to start, the gateway serves its files".into());
            return Ok(Started {
                plan,
                handles: Vec::new(),
                taken,
            });
        }
        let handle = platform
            .launch(plan.clone(), Some(&self.cancel), false)
            .await
            .map_err(|f| DeployError::Start(f.reason))?;
        // The first instance proved the deployment starts. The switch gets as many as serve
        // now (at least the minimum, never above the maximum), as env changes and rollbacks
        // do: a loaded service must not drop to one instance and a wave of cold starts.
        let (running, scaling) =
            platform
                .state()
                .get(&self.v.name)
                .map_or((0, plan.spec.scaling), |s| {
                    (
                        s.live.as_ref().map_or(0, |l| l.instances.len()),
                        scaling_over(s.scaling, &self.scaling),
                    )
                });
        let want = scaling.target_instances(running, true);
        let mut handles = vec![handle];
        if want > 1 {
            self.log(format!(
                "starting {} more to match the instances serving now",
                want - 1
            ));
            let (more, failures) = platform
                .launch_many(&plan, want - 1, Some(&self.cancel))
                .await;
            handles.extend(more);
            // The deployment works; the scaler makes up for a start that did not.
            for reason in failures {
                self.log(format!("an extra instance did not start: {reason}"));
            }
        }
        if self.cancel.is_cancelled() {
            self.stop_all(handles);
            return Err(self.cancelled());
        }
        Ok(Started {
            plan,
            handles,
            taken,
        })
    }

    fn stop_all(&self, handles: Vec<InstanceHandle>) {
        for h in handles {
            self.platform.stopping.spawn(h.stop());
        }
    }

    /// The switch: record first (durable: the flags' env, then the live pointer), then swap
    /// the pool's instances in one step, then drain the old ones. Once live, nothing fails
    /// the deployment any more: what goes wrong after is said in its log.
    async fn switch(&mut self, s: Started) -> Result<(), DeployError> {
        let platform = self.platform.clone();
        let (v, id) = (&self.v, &self.id);
        let plan = match platform.persist_flag_env(&v.name, &v.env, &s.plan) {
            Ok(p) => p,
            Err(e) => {
                self.stop_all(s.handles);
                return Err(e.into());
            }
        };
        // Recorded live and swapped in under the services' lock, and only while this deploy
        // still owns the service: a rollback or a delete that came in since (it takes the
        // pending slot under the same lock) must not be overwritten by it.
        let from = self.state;
        let cancel = self.cancel.clone();
        let layer = self.scaling;
        let mut scaling = plan.spec.scaling;
        // The site goes live in the same step as the instances; the deployment it replaces
        // keeps its hashed files answering for the grace time.
        // Off the event loop: the replaced deployment's manifest is read from disk.
        let (me, name, next) = (platform.clone(), v.name.clone(), id.clone());
        let manifest = s.taken.map(|t| t.manifest);
        let site = tokio::task::spawn_blocking(move || me.site_at_switch(&name, &next, manifest))
            .await
            .unwrap_or_else(|e| Err(format!("preparing the static files: {e}")));
        let site = match site {
            Ok(site) => site,
            Err(reason) => {
                self.stop_all(s.handles);
                return Err(crate::static_step::StaticStepError(reason).into());
            }
        };
        let switched = platform
            .switch_live(
                plan.clone(),
                s.handles,
                |state| {
                    let owns = state.pending.as_ref().is_some_and(|(p, _)| p == id);
                    if !owns || cancel.is_cancelled() {
                        return Err(None::<StoreError>);
                    }
                    platform.go_live(&v.name, id, from).map_err(Some)?;
                    state.pool.set_static(site);
                    scaling = scaling_over(state.scaling, &layer);
                    state.scaling = scaling;
                    state.pool.set_limits(crate::platform::limits(&scaling));
                    Ok(())
                },
                || None,
            )
            .await;
        match switched {
            Ok(()) => {}
            Err(Some(e)) => return Err(e.into()),
            Err(None) => return Err(self.cancelled()),
        }
        self.state = DeploymentState::Live;
        if let Err(e) = platform.store.set_service_scaling(&v.name, &scaling) {
            tracing::error!(service = %v.name, error = %e, "recording the scaling settings");
            self.log(format!("recording the scaling settings: {e}"));
        }
        // The service's recorded spec is the live one's (a deploy that fails never shows),
        // recorded before anything else can go live.
        if let Err(e) = platform.store.set_service_spec(&v.name, &plan.spec) {
            tracing::error!(service = %v.name, error = %e, "recording the live spec");
        }
        // The hoist.toml jobs of the deployment now live replace those of the one before.
        match platform.apply_file_cron(&v.name, &plan.spec.cron) {
            Ok(Some(line)) => self.log(line),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(service = %v.name, error = %e, "applying the cron jobs");
                self.log(format!("applying the cron jobs of hoist.toml: {e}"));
            }
        }
        // An `env set` while this deploy built: its instances have the older environment.
        if let Err(e) = platform.roll_out_env(&v.name).await {
            self.log(format!("applying the latest environment: {e}"));
        }
        self.log(format!(
            "deployment {id} is live at {}",
            platform.url(&v.name)
        ));
        match platform.collect_images(&v.name).await {
            Ok((0, _)) => {}
            Ok((n, bytes)) => self.log(format!(
                "removed {n} old image(s), freeing {:.1} MB (keeping the last {})",
                bytes as f64 / 1e6,
                platform.config.keep_images
            )),
            Err(e) => self.log(format!("removing old images: {e}")),
        }
        Ok(())
    }
}

impl Platform {
    /// Validates the request, records the deployment and runs its pipeline in the background.
    pub async fn deploy(
        self: &Arc<Self>,
        req: DeployRequest,
    ) -> Result<DeploymentRecord, ControlError> {
        self.deploy_by(req, DeploymentTrigger::Api, None).await
    }

    /// [`Platform::deploy`], recording what started it; `commit` pins the commit deployed
    /// (a push's), else the branch's tip at fetch time is.
    pub async fn deploy_by(
        self: &Arc<Self>,
        req: DeployRequest,
        trigger: DeploymentTrigger,
        commit: Option<String>,
    ) -> Result<DeploymentRecord, ControlError> {
        let upload = match &req.upload {
            Some(id) => Some(self.find_upload(id).await?),
            None => None,
        };
        let mut v = validate(&req, upload.as_ref())?;
        v.commit = commit;
        let scaling = self
            .store
            .get_service(&v.name)?
            .and_then(|s| s.scaling)
            .unwrap_or_default();
        // Checked now against the service's current settings (the ones the flags do not name
        // keep their values), so a bad combination fails the request rather than the build.
        scaling.apply(&v.flags.scaling)?;
        let id = DeploymentId::generate();
        let request = redacted(&req);
        self.store.ensure_service(&v.name)?;
        self.store.insert_triggered_deployment(
            &id,
            &v.name,
            &v.source,
            v.branch.as_deref(),
            &request,
            &trigger,
        )?;
        // The first deploy of a service that redeploys on push makes its webhook secret, so
        // `hoist hooks NAME` has one to show.
        if v.flags.auto_deploy.mode.unwrap_or_default() == hoist_core::AutoDeploy::Push {
            self.ensure_webhook_secret(&v.name)?;
        }
        let cancel = CancellationToken::new();
        {
            let mut services = self.state();
            let state = self.ensure_state(&mut services, &v.name, scaling);
            // The later deploy wins: the earlier one is cancelled wherever it is.
            if let Some((previous, token)) = state.pending.replace((id.clone(), cancel.clone())) {
                self.lifecycle
                    .cancel(&previous, &token, CancelReason::NewerDeploy);
            }
        }
        self.publish_routes();
        let record = self
            .store
            .get_deployment(&id)?
            .ok_or_else(|| ControlError::DeploymentNotFound(id.to_string()))?;
        // On the tracker a clean stop waits for: a stop cancels the pipeline, which then
        // records its outcome and removes what it started before the server exits.
        let me = self.clone();
        self.stopping.spawn(Run::run(me, id, v, cancel));
        Ok(record)
    }

    /// Adds a deploy's `--env` flags to the service env (sealed) as it goes live, and returns
    /// the plan marked with the revision that holds them.
    pub(crate) fn persist_flag_env(
        &self,
        name: &ServiceName,
        flags: &EnvVars,
        plan: &Arc<InstancePlan>,
    ) -> Result<Arc<InstancePlan>, ControlError> {
        if flags.is_empty() {
            return Ok(plan.clone());
        }
        let (next, revision, changed) = self.update_env(name, |next| {
            next.merge(flags.clone());
            Ok(next.check_size()?)
        })?;
        // The instance already runs this environment unless another change came in between;
        // then the revision stays old and the rollout after the switch brings the instances
        // up to date.
        let same = crate::env::combined(&plan.spec.env, &next)? == plan.env;
        Ok(if changed && same {
            Arc::new(InstancePlan {
                revision,
                ..(**plan).clone()
            })
        } else {
            plan.clone()
        })
    }
}

impl Platform {
    pub(crate) fn build_sink(
        &self,
        service: &hoist_core::ServiceName,
        id: &DeploymentId,
    ) -> LogSink {
        let logs = self.logs.clone();
        let service = service.to_string();
        let deployment = id.to_string();
        Arc::new(move |stream: OutputStream, line: String| {
            let line = match stream {
                OutputStream::System => format!("==> {line}"),
                _ => line,
            };
            logs.try_write(NewLogLine {
                service: service.clone(),
                deployment: Some(deployment.clone()),
                instance: None,
                stream: hoist_store::LogStream::Build,
                ts: now_ms(),
                line,
            });
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts users see as `failure_reason` (and the e2e tests look for).
    #[test]
    fn a_cancellation_says_why() {
        let text = |why| DeployError::Cancelled(why).to_string();
        assert_eq!(
            text(CancelReason::NewerDeploy),
            "cancelled: a newer deployment of this service was started"
        );
        assert_eq!(
            text(CancelReason::Rollback),
            "cancelled: a rollback of this service was started"
        );
        assert_eq!(
            text(CancelReason::ServerStopping),
            "cancelled: the server is stopping"
        );
        assert_eq!(
            DeployError::Fetch(BuildError::BranchMissing {
                branch: "nope".into(),
                source_url: "/srv/app".into()
            })
            .to_string(),
            "branch 'nope' does not exist in /srv/app"
        );
    }
}
