//! The deployment pipeline: validate the request, fetch the source at a pinned commit, resolve
//! the spec (leapcell.yaml < hoist.toml < flags), build, start the first instance, and switch
//! the service to it only once it answers. Any failure leaves the previous deployment serving.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use hoist_api_types::DeployRequest;
use hoist_build::{BuildRequest, LogSink, OutputStream, fetch};
use hoist_core::{
    DeploymentId, DeploymentState, EnvVars, MemoryMb, Port, RootDir, Runtime, Scaling, ServiceName,
    ServiceSpec, SpecError, SpecLayer, validate_branch,
};
use hoist_store::{DeploymentRecord, LogStream, NewLogLine, now_ms};
use tokio_util::sync::CancellationToken;

use crate::instance::InstancePlan;
use crate::{ControlError, Platform};

/// PATH_MAX; browsers and git hosts cap URLs well below it.
const MAX_SOURCE_LEN: usize = 4096;

const CANCELLED: &str = "cancelled: a newer deployment of this service was started";

struct Validated {
    name: ServiceName,
    source: String,
    branch: Option<String>,
    root: RootDir,
    /// Settings from flags, except the environment: that is `env`.
    flags: SpecLayer,
    /// `--env` assignments: they join the service env when the deployment goes live, and
    /// until then live only in memory (never in plain text in the database).
    env: EnvVars,
}

/// A request's checks and resolution into a [`Validated`] deploy.
fn validate(req: &DeployRequest) -> Result<Validated, SpecError> {
    let source = req.source.trim().to_string();
    if source.is_empty() {
        return Err(SpecError::Missing {
            field: "source",
            hint: "give a git URL or the path of a local git repository".into(),
        });
    }
    if source.len() > MAX_SOURCE_LEN {
        return Err(SpecError::invalid(
            "source",
            source,
            "must be at most 4096 bytes (no URL or path is longer)",
        ));
    }
    if !hoist_core::is_remote_source(&source) && !Path::new(&source).is_absolute() {
        return Err(SpecError::invalid(
            "source",
            source,
            "a local path must be absolute (the CLI resolves it for you)",
        ));
    }
    let name = match &req.name {
        Some(n) => ServiceName::from_str(n)?,
        None => ServiceName::derive_from_source(&source)?,
    };
    if let Some(b) = &req.branch {
        validate_branch(b)?;
    }
    let mut root = RootDir::new(req.root.as_deref().unwrap_or(""))?;
    let mut source = source;
    if !hoist_core::is_remote_source(&source)
        && let Some((top, prefix)) = repo_toplevel(Path::new(&source))
    {
        // A directory inside a repository deploys that directory: the repository is
        // the source and the directory becomes (the start of) the root directory.
        let joined = Path::new(&prefix).join(root.as_str());
        root = RootDir::new(&joined.display().to_string())?;
        source = top;
    }
    let mut env = EnvVars::new();
    for assignment in &req.env {
        let (k, v) = EnvVars::parse_assignment(assignment)?;
        env.insert(k, v)?;
    }
    let flags = SpecLayer {
        runtime: req.runtime,
        build_command: req.build.clone().filter(|b| !b.trim().is_empty()),
        start_command: req.start.clone().filter(|s| !s.trim().is_empty()),
        port: req.port.map(Port::from_i64).transpose()?,
        memory: req.memory.as_deref().map(MemoryMb::parse).transpose()?,
        env: EnvVars::new(),
        scaling: req.scaling.to_layer()?,
    };
    Ok(Validated {
        name,
        source,
        branch: req.branch.clone(),
        root,
        flags,
        env,
    })
}

/// The request as recorded: `--env` values are secrets, so only their names are kept.
fn redacted(req: &DeployRequest) -> serde_json::Value {
    let mut copy = req.clone();
    copy.env = req
        .env
        .iter()
        .map(|a| a.split_once('=').map_or(a.as_str(), |(k, _)| k).to_string())
        .collect();
    serde_json::to_value(&copy).unwrap_or_default()
}

impl Platform {
    /// Validates the request, records the deployment and runs its pipeline in the background.
    pub async fn deploy(
        self: &Arc<Self>,
        req: DeployRequest,
    ) -> Result<DeploymentRecord, ControlError> {
        let v = validate(&req)?;
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
        self.store
            .insert_deployment(&id, &v.name, &v.source, v.branch.as_deref(), &request)?;
        let cancel = CancellationToken::new();
        {
            let mut services = self.state();
            let state = self.ensure_state(&mut services, &v.name, scaling);
            // The later deploy wins: the earlier one is cancelled wherever it is.
            if let Some((_, previous)) = state.pending.replace((id.clone(), cancel.clone())) {
                previous.cancel();
            }
        }
        self.publish_routes();
        let record = self
            .store
            .get_deployment(&id)?
            .ok_or_else(|| ControlError::DeploymentNotFound(id.to_string()))?;
        let me = self.clone();
        tokio::spawn(async move { me.run_pipeline(id, v, cancel).await });
        Ok(record)
    }

    fn build_sink(&self, service: &ServiceName, id: &DeploymentId) -> LogSink {
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
                stream: LogStream::Build,
                ts: now_ms(),
                line,
            });
        })
    }

    fn step(
        &self,
        id: &DeploymentId,
        name: &ServiceName,
        state: DeploymentState,
    ) -> Result<(), String> {
        self.store
            .set_deployment_state(id, state, None)
            .map_err(|e| e.to_string())?;
        self.announce(id, name, state, None);
        Ok(())
    }

    async fn run_pipeline(
        self: Arc<Self>,
        id: DeploymentId,
        v: Validated,
        cancel: CancellationToken,
    ) {
        let sink = self.build_sink(&v.name, &id);
        // The flags' env reaches the build and the first instances before it joins the
        // service env: its values are masked in the log from the start.
        let mask_source = format!("deploy {id}");
        self.logs
            .masks()
            .set(v.name.as_str(), &mask_source, crate::env::values(&v.env));
        // Each stage watches the token itself and cleans up what it started (a sandbox, a git
        // process); dropping the whole pipeline mid-await would leak them.
        let outcome = self.pipeline(&id, &v, &sink, &cancel).await;
        let (state, reason) = match outcome {
            Ok(()) => (DeploymentState::Live, None),
            // Whatever stage noticed the cancellation, the reason is why it was cancelled.
            Err(_) if cancel.is_cancelled() && self.shutdown.is_cancelled() => (
                DeploymentState::Cancelled,
                Some("cancelled: the server is stopping".to_string()),
            ),
            Err(_) if cancel.is_cancelled() => {
                (DeploymentState::Cancelled, Some(CANCELLED.to_string()))
            }
            Err(reason) => (DeploymentState::Failed, Some(reason)),
        };
        if state != DeploymentState::Live {
            let text = reason.clone().unwrap_or_default();
            sink(
                OutputStream::System,
                format!("deployment {id} {}: {text}", state.as_str()),
            );
            if let Err(e) = self.store.set_deployment_state(&id, state, Some(&text)) {
                tracing::error!(deployment = %id, error = %e, "recording deployment outcome");
            }
            self.announce(&id, &v.name, state, reason);
        }
        self.builder
            .discard(&format!("b-{}", id.as_str().trim_start_matches("d-")));
        // Live, the values are the service env's now (masked as that); failed or cancelled,
        // they were never anybody's. Either way this run's lines are masked as they are
        // stored, so the values stay in the mask until every line queued so far is stored.
        self.logs.flushed().await;
        self.logs.masks().clear(v.name.as_str(), &mask_source);
        let mut services = self.state();
        if let Some(s) = services.get_mut(&v.name)
            && s.pending.as_ref().is_some_and(|(p, _)| p == &id)
        {
            s.pending = None;
        }
    }

    async fn pipeline(
        self: &Arc<Self>,
        id: &DeploymentId,
        v: &Validated,
        sink: &LogSink,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        let _permit = tokio::select! {
            permit = self.build_slots.acquire() => {
                permit.map_err(|_| "the server is shutting down".to_string())?
            }
            _ = cancel.cancelled() => return Err(CANCELLED.into()),
        };

        self.step(id, &v.name, DeploymentState::Fetching)?;
        let build_id = format!("b-{}", id.as_str().trim_start_matches("d-"));
        let src = self.builder.source_dir(&build_id);
        if let Some(parent) = src.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("preparing the build directory: {e}"))?;
        }
        sink(
            OutputStream::System,
            format!(
                "fetching {} ({})",
                hoist_core::redact_credentials(&v.source),
                v.branch.as_deref().unwrap_or("default branch")
            ),
        );
        let fetched = tokio::select! {
            f = fetch(&v.source, v.branch.as_deref(), &src) => f.map_err(|e| e.to_string())?,
            _ = cancel.cancelled() => return Err(CANCELLED.into()),
        };
        self.store
            .set_deployment_source(id, &fetched.commit, &fetched.branch)
            .map_err(|e| e.to_string())?;
        sink(
            OutputStream::System,
            format!("commit {} on branch {}", fetched.commit, fetched.branch),
        );

        // Component by component, never through a symlink: the repository decides what its
        // tree holds, and a link must not make the server read a host directory.
        let app_root = v.root.resolve_in(&src).map_err(|e| e.to_string())?;
        let base = self
            .state()
            .get(&v.name)
            .map(|s| s.scaling)
            .unwrap_or_default();
        let spec = resolve_spec(&app_root, v, &fetched.branch, base).map_err(|e| e.to_string())?;
        self.store
            .set_deployment_spec(id, &spec)
            .map_err(|e| e.to_string())?;
        // What the instances get: the repository's env, the service's, this deploy's flags.
        let (service_env, revision) = self.service_env(&v.name).map_err(|e| e.to_string())?;
        let mut deploy_env = service_env.clone();
        deploy_env.merge(v.env.clone());
        let env = crate::env::combined(&spec.env, &deploy_env).map_err(|e| e.to_string())?;

        self.step(id, &v.name, DeploymentState::Building)?;
        let runtime = self
            .runtimes
            .ensure(spec.runtime, sink)
            .await
            .map_err(|e| e.to_string())?;
        let build_started = std::time::Instant::now();
        let output = self
            .builder
            .build(
                BuildRequest {
                    id: build_id,
                    service: v.name.clone(),
                    runtime: runtime.clone(),
                    root_dir: v.root.as_str().to_string(),
                    build_command: spec.build_command.clone(),
                    env: env
                        .iter()
                        .map(|(k, val)| (k.to_string(), val.to_string()))
                        .collect(),
                    timeout: self.config.build_timeout,
                    cancel: cancel.clone(),
                },
                sink,
            )
            .await;
        self.build_stats.record(
            match &output {
                Ok(_) => crate::metrics::BuildOutcome::Succeeded,
                Err(_) if cancel.is_cancelled() => crate::metrics::BuildOutcome::Cancelled,
                Err(_) => crate::metrics::BuildOutcome::Failed,
            },
            build_started.elapsed(),
        );
        let output = output.map_err(|e| e.to_string())?;
        self.store
            .set_deployment_image(id, &output.layer.digest, &runtime.version)
            .map_err(|e| e.to_string())?;
        drop(_permit);

        self.step(id, &v.name, DeploymentState::Starting)?;
        let plan = Arc::new(InstancePlan {
            service: v.name.clone(),
            deployment: id.clone(),
            layers: vec![output.layer.path.clone(), runtime.rootfs.clone()],
            env,
            revision,
            spec,
        });
        let handle = self
            .launch(plan.clone(), Some(cancel), false)
            .await
            .map_err(|f| f.reason)?;
        // The first instance proved the deployment starts. The switch gets as many as serve
        // now (at least the minimum), as env changes and rollbacks do: a loaded service must
        // not drop to one instance and a wave of cold starts.
        let want = {
            let running = self
                .state()
                .get(&v.name)
                .and_then(|s| s.live.as_ref())
                .map_or(0, |l| l.instances.len());
            let scaling = plan.spec.scaling;
            running
                .max(scaling.min_instances as usize)
                .min(scaling.max_instances as usize)
        };
        let mut handles = vec![handle];
        if want > 1 {
            sink(
                OutputStream::System,
                format!(
                    "starting {} more to match the instances serving now",
                    want - 1
                ),
            );
            let (more, failures) = self.launch_many(&plan, want - 1, Some(cancel)).await;
            handles.extend(more);
            // The deployment works; the scaler makes up for a start that did not.
            for reason in failures {
                sink(
                    OutputStream::System,
                    format!("an extra instance did not start: {reason}"),
                );
            }
        }
        let stop_all = |handles: Vec<crate::instance::InstanceHandle>| {
            for h in handles {
                self.stopping.spawn(h.stop());
            }
        };
        if cancel.is_cancelled() {
            stop_all(handles);
            return Err(CANCELLED.into());
        }

        // The switch: record first (durable: the flags' env, then the live pointer), then
        // swap the pool's instances in one step, then drain the old ones.
        let plan = match self.persist_flag_env(&v.name, &v.env, &plan) {
            Ok(p) => p,
            Err(e) => {
                stop_all(handles);
                return Err(e.to_string());
            }
        };
        let scaling = plan.spec.scaling;
        if let Err(e) = self
            .store
            .set_live(&v.name, id)
            .and_then(|_| self.store.set_service_scaling(&v.name, &scaling))
        {
            stop_all(handles);
            return Err(e.to_string());
        }
        {
            let mut services = self.state();
            let state = self.ensure_state(&mut services, &v.name, scaling);
            state.scaling = scaling;
            state.pool.set_limits(crate::platform::limits(&scaling));
        }
        self.switch_live(plan.clone(), handles, None).await;
        // An `env set` while this deploy built: its instances have the older environment.
        if let Err(e) = self.roll_out_env(&v.name).await {
            sink(
                OutputStream::System,
                format!("applying the latest environment: {e}"),
            );
        }
        // The service's recorded spec is the live one's: a deploy that fails never shows.
        if let Some(spec) = self
            .store
            .get_deployment(id)
            .ok()
            .flatten()
            .and_then(|d| d.spec)
        {
            let _ = self.store.set_service_spec(&v.name, &spec);
        }
        sink(
            OutputStream::System,
            format!("deployment {id} is live at {}", self.url(&v.name)),
        );
        self.announce(id, &v.name, DeploymentState::Live, None);
        match self.collect_images(&v.name).await {
            Ok((0, _)) => {}
            Ok((n, bytes)) => sink(
                OutputStream::System,
                format!(
                    "removed {n} old image(s), freeing {:.1} MB (keeping the last {})",
                    bytes as f64 / 1e6,
                    self.config.keep_images
                ),
            ),
            Err(e) => sink(OutputStream::System, format!("removing old images: {e}")),
        }
        Ok(())
    }

    /// Adds a deploy's `--env` flags to the service env (sealed) as it goes live, and returns
    /// the plan marked with the revision that holds them.
    fn persist_flag_env(
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

/// For a path inside a git work tree: the top level and the path's place in it.
fn repo_toplevel(path: &Path) -> Option<(String, String)> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(path)
        .args(["rev-parse", "--show-toplevel", "--show-prefix"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let top = lines.next()?.to_string();
    let prefix = lines.next().unwrap_or("").trim_end_matches('/').to_string();
    (!prefix.is_empty()).then_some((top, prefix))
}

fn resolve_spec(
    app_root: &Path,
    v: &Validated,
    branch: &str,
    scaling: Scaling,
) -> Result<ServiceSpec, SpecError> {
    let read = |file: &'static str| crate::config_file::read_config(app_root, file);
    let mut layer = SpecLayer::default();
    let leapcell = match read("leapcell.yaml")? {
        Some(text) => Some(text),
        None => read("leapcell.yml")?,
    };
    if let Some(text) = leapcell {
        layer = layer.merge(SpecLayer::from_leapcell_yaml(&text)?);
    }
    if let Some(text) = read("hoist.toml")? {
        layer = layer.merge(SpecLayer::from_hoist_toml(&text)?);
    }
    let layer = layer.merge(v.flags.clone());
    let files: Vec<String> = std::fs::read_dir(app_root)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let names: Vec<&str> = files.iter().map(String::as_str).collect();
    // Scaling settings not named by this deploy keep the service's current values (so a
    // `hoist scale` survives a redeploy).
    ServiceSpec::resolve(
        v.name.clone(),
        v.source.clone(),
        Some(branch.to_string()),
        v.root.clone(),
        layer,
        Runtime::detect(&names),
        scaling,
    )
}
