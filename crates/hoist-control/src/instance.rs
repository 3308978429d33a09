//! Instances: start one from a deployment's image (from the warm pool when it has a sandbox
//! for it), wait until it answers HTTP, then supervise it until it is stopped or dies; a dead
//! instance of a live deployment is replaced.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hoist_build::{OutputStream, merge_lines};
use hoist_core::{InstanceId, InstanceState, ServiceName};
use hoist_gateway::{Upstream, UpstreamState};
use hoist_sandbox::{LaunchSpec, Privileges, ProcessSpec, probe_http};
use hoist_store::Store;
use hoist_store::{LogStream, NewLogLine, now_ms};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::boost::{BoostGuard, StartupBoost};
use crate::events::Events;
pub(crate) use crate::handle::{InstanceHandle, InstancePlan, InstanceShared};
use crate::handle::{UsageMark, record_usage};
use crate::logs::LogHub;
use crate::seams::{Created, InstanceSandbox, OutputPipe, SandboxDriver};
use crate::services::Services;
use crate::warm::{PlanKey, Standby, WarmPool};

fn first_line(text: &str) -> &str {
    text.split(';').next().unwrap_or(text)
}

const STOP_GRACE: Duration = Duration::from_secs(10);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const TAIL_LINES: usize = 15;

/// Why an instance could not become ready, with the app's last lines.
#[derive(Debug)]
pub(crate) struct StartFailure {
    pub(crate) reason: String,
}

/// Starts and supervises instances. Its state: the sandbox driver and the warm pool; it
/// reads the services (to adopt an instance, or to replace a dead one) through their own
/// interface.
pub(crate) struct Launcher {
    start_timeout: Duration,
    store: Arc<Store>,
    logs: LogHub,
    sandboxes: Arc<dyn SandboxDriver>,
    pub(crate) warm: WarmPool,
    services: Arc<Services>,
    events: Arc<Events>,
    /// Instances being stopped and standbys being made: a server stop waits for them.
    pub(crate) stopping: TaskTracker,
    pub(crate) shutdown: CancellationToken,
    cron_secrets: Arc<crate::cron_parts::CronSecrets>,
    /// Raises a starting instance's CPU quota until it has settled.
    pub(crate) boost: Arc<StartupBoost>,
}

/// What a [`Launcher`] is made of.
pub(crate) struct LauncherParts {
    pub(crate) start_timeout: Duration,
    pub(crate) store: Arc<Store>,
    pub(crate) logs: LogHub,
    pub(crate) sandboxes: Arc<dyn SandboxDriver>,
    pub(crate) warm: WarmPool,
    pub(crate) services: Arc<Services>,
    pub(crate) events: Arc<Events>,
    pub(crate) stopping: TaskTracker,
    pub(crate) shutdown: CancellationToken,
    pub(crate) cron_secrets: Arc<crate::cron_parts::CronSecrets>,
    pub(crate) boost: Arc<StartupBoost>,
}

impl Launcher {
    pub(crate) fn new(p: LauncherParts) -> Launcher {
        Launcher {
            start_timeout: p.start_timeout,
            store: p.store,
            logs: p.logs,
            sandboxes: p.sandboxes,
            warm: p.warm,
            services: p.services,
            events: p.events,
            stopping: p.stopping,
            shutdown: p.shutdown,
            cron_secrets: p.cron_secrets,
            boost: p.boost,
        }
    }

    /// Removes every standby (server stop); the removals join `stopping`.
    pub(crate) fn drain_standbys(&self) {
        self.warm.drain(&self.stopping);
    }

    /// Stops what the sandbox driver keeps ready (server stop, after the instances).
    pub(crate) async fn shutdown(&self) {
        self.sandboxes.shutdown().await;
    }

    /// Adds a started instance to its deployment if that is still live; otherwise stops it.
    fn adopt(&self, plan: &InstancePlan, handle: InstanceHandle) -> bool {
        // A start that finishes while the server stops: the instances were already taken
        // out to be stopped, so this one would be left running.
        let refused = if self.shutdown.is_cancelled() {
            Err(handle)
        } else {
            self.services.adopt(plan, handle)
        };
        match refused {
            Ok(()) => true,
            Err(handle) => {
                self.stopping.spawn(handle.stop());
                false
            }
        }
    }

    fn launch_spec(&self, plan: &InstancePlan, id: &InstanceId) -> LaunchSpec {
        let spec = &plan.spec;
        let mut env = vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            // Only /tmp is writable, so that is where tools that want a home write.
            "HOME=/tmp".into(),
            "LANG=C.UTF-8".into(),
            // Python buffers stdout when it is a pipe; logs must show up as they happen.
            "PYTHONUNBUFFERED=1".into(),
            // Node.js from the npm registry trusts only its own bundled CAs; the host's
            // bundle (mounted at this path) is what a TLS-inspecting proxy's CA is in.
            hoist_build::NODE_EXTRA_CA_CERTS.into(),
            format!("PORT={}", spec.port.get()),
            format!("HOIST_SERVICE={}", spec.name),
            format!("HOIST_DEPLOYMENT={}", plan.deployment),
            format!("HOIST_INSTANCE={id}"),
        ];
        env.extend(plan.env.to_env_list());
        // What the cron runs' `Authorization: Bearer` carries, so the app can check them.
        if let Some(secret) = self.cron_secrets.get(&spec.name) {
            env.push(format!("HOIST_CRON_SECRET={secret}"));
        }
        LaunchSpec {
            hostname: spec.name.to_string(),
            layers: plan.layers.clone(),
            upper: None,
            process: ProcessSpec {
                // A static site has none and never gets here (`launch` refuses it).
                args: vec![
                    "bash".into(),
                    "-c".into(),
                    spec.start_command.clone().unwrap_or_default(),
                ],
                env,
                cwd: spec
                    .root_dir
                    .join_onto(Path::new("/app"))
                    .display()
                    .to_string(),
            },
            memory_mb: u64::from(spec.memory.get()),
            cpu_millicores: spec.memory.cpu_millicores(),
            pids_limit: 1024,
            tmp_size_mb: u64::from(spec.memory.get()).min(512),
            privileges: Privileges::None,
            binds: Vec::new(),
        }
    }

    pub(crate) fn system_line(&self, plan: &InstancePlan, id: Option<&InstanceId>, line: String) {
        self.logs.try_write(NewLogLine {
            service: plan.service.to_string(),
            deployment: Some(plan.deployment.to_string()),
            instance: id.map(|i| i.to_string()),
            stream: LogStream::System,
            ts: now_ms(),
            line,
        });
    }

    /// Starts an instance and returns once it answers HTTP on its port. A sandbox from the
    /// warm pool is used when there is one for this deployment; `cold` marks a start that a
    /// request is waiting for.
    pub(crate) async fn launch(
        self: &Arc<Self>,
        plan: Arc<InstancePlan>,
        cancel: Option<&CancellationToken>,
        cold: bool,
    ) -> Result<InstanceHandle, StartFailure> {
        let never = CancellationToken::new();
        let cancel = cancel.unwrap_or(&never);
        let fail = |reason: String| StartFailure { reason };
        if plan.spec.is_static_only() {
            return Err(fail(
                "a static site runs no instance: the gateway serves its files".into(),
            ));
        }
        let started = Instant::now();
        let (id, launched, warm) = match self.take_standby(&plan.key()) {
            Some(standby) => (standby.id, standby.launched, true),
            None => {
                let id = InstanceId::generate();
                match self.create_sandbox(&plan, &id).await {
                    Ok(l) => (id, l, false),
                    Err(reason) => return Err(fail(reason)),
                }
            }
        };
        let timings = launched.timings;
        let netns = launched.netns.clone();
        let mut sandbox = launched.sandbox;
        // The quota is raised before the app's first instruction (its process waits in the
        // created sandbox), so the whole boot runs boosted: one cgroup file write.
        let normal = plan.spec.memory.cpu_millicores();
        let boost = self
            .services
            .startup_boost(&plan)
            .then(|| self.boost.begin(id.clone(), normal, sandbox.cpu()));
        // The app runs first; recording it (a database write) overlaps with its boot.
        let t = Instant::now();
        let started_ok = sandbox.start().await;
        let start_call = t.elapsed();
        if let Err(e) = self.store.insert_instance(
            &id,
            &plan.service,
            &plan.deployment,
            cold,
            plan.spec.memory.get(),
        ) {
            sandbox.destroy().await;
            return Err(fail(e.to_string()));
        }
        if let Err(e) = started_ok {
            sandbox.destroy().await;
            let reason = format!("could not start the sandbox: {e}");
            let _ = self
                .store
                .set_instance_state(&id, InstanceState::Failed, Some(&reason));
            return Err(fail(reason));
        }
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        let pump = self.pump_output(&plan, &id, launched.stdout, launched.stderr, tail.clone());

        let port = plan.spec.port.get();
        let deadline = started + self.start_timeout;
        let mut delay = Duration::from_millis(1);
        let ready = loop {
            let probe = async {
                match netns.connect(port).await {
                    Ok(stream) => tokio::time::timeout(PROBE_TIMEOUT, probe_http(stream))
                        .await
                        .unwrap_or(false),
                    Err(_) => false,
                }
            };
            tokio::select! {
                exit = sandbox.wait() => {
                    break Err(format!("the start command exited ({exit}) before answering HTTP on port {port}"));
                }
                ok = probe => if ok { break Ok(()); },
                _ = cancel.cancelled() => break Err("cancelled: a newer deployment of this service was started".into()),
            }
            if Instant::now() >= deadline {
                break Err(format!(
                    "the app did not answer HTTP on port {port} within {}s (is it listening on that port?)",
                    self.start_timeout.as_secs()
                ));
            }
            tokio::select! {
                exit = sandbox.wait() => {
                    break Err(format!("the start command exited ({exit}) before answering HTTP on port {port}"));
                }
                _ = tokio::time::sleep(delay) => {}
                _ = cancel.cancelled() => break Err("cancelled: a newer deployment of this service was started".into()),
            }
            // Fine-grained while a fast app is likely to come up (each probe is a connect()
            // on loopback, microseconds), coarse once it is clearly a slow starter.
            let cap = if started.elapsed() < Duration::from_secs(2) {
                Duration::from_millis(2)
            } else {
                Duration::from_millis(50)
            };
            delay = (delay * 2).min(cap);
        };
        if let Err(reason) = ready {
            sandbox.stop(Duration::from_secs(2)).await;
            // The pipes are closed now; let the pump catch the last lines.
            let _ = tokio::time::timeout(Duration::from_secs(2), pump).await;
            let lines: Vec<String> = tail
                .lock()
                .map(|t| t.iter().cloned().collect())
                .unwrap_or_default();
            let reason = if lines.is_empty() {
                reason
            } else {
                format!("{reason}; last output:\n{}", lines.join("\n"))
            };
            let _ = self
                .store
                .set_instance_state(&id, InstanceState::Failed, Some(&reason));
            self.system_line(
                &plan,
                Some(&id),
                format!("instance {id} failed to start: {reason}"),
            );
            self.events.record(hoist_store::NewEvent {
                service: plan.service.to_string(),
                ts: now_ms(),
                kind: hoist_core::EventKind::StartFailed,
                instance: Some(id.to_string()),
                deployment: Some(plan.deployment.to_string()),
                detail: first_line(&reason).to_string(),
                context: lines,
            });
            return Err(fail(reason));
        }
        let total = started.elapsed();
        // The settle time starts now: the app answers, but its first requests often still
        // load code (lazy imports, template caches).
        let boosted = boost.as_ref().map(|g| {
            g.ready();
            g.millicores().unwrap_or(normal)
        });
        // The next start of this deployment gets a sandbox made ahead of time; made only now,
        // so that making it (crun, mounts) does not compete with this app's boot for the CPU.
        self.refill_standby(plan.clone());
        let _ = self
            .store
            .set_instance_state(&id, InstanceState::Ready, None);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let booted = t.elapsed().saturating_sub(start_call);
        let prepared = if warm {
            "sandbox from the warm pool".to_string()
        } else {
            format!(
                "network {:.1} ms, bundle {:.1} ms, crun create {:.1} ms",
                ms(timings.network),
                ms(timings.bundle),
                ms(timings.crun_spawn)
            )
        };
        let cpu = match boosted {
            Some(m) if m > normal => format!(
                "; CPU {m}m (boosted from {normal}m) for {} more",
                hoist_core::format_duration(self.boost.config().settle)
            ),
            Some(_) if normal >= 1000 => format!("; CPU {normal}m (its memory's share, no boost)"),
            Some(_) => format!(
                "; CPU {normal}m (the boost budget is taken by other starts; boosted when it frees)"
            ),
            None => format!("; CPU {normal}m (startup boost off)"),
        };
        self.system_line(
            &plan,
            Some(&id),
            format!(
                "instance {id} ready in {:.1} ms ({prepared}, start {:.1} ms, boot and readiness {:.1} ms){cpu}",
                ms(total),
                ms(start_call),
                ms(booted)
            ),
        );
        let freezer = sandbox.freezer();
        let upstream = Upstream::new(id.to_string(), netns, port, freezer.clone());
        let shared = Arc::new(InstanceShared {
            id: id.clone(),
            service: plan.service.clone(),
            upstream,
            freezer,
            memory_mb: plan.spec.memory.get(),
            recorded: Mutex::new(UsageMark::default()),
            recorded_state: Mutex::new(InstanceState::Ready),
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(self.clone().supervise(
            plan,
            shared.clone(),
            sandbox,
            stop.clone(),
            pump,
            boost,
        ));
        Ok(InstanceHandle::new(shared, stop, task))
    }

    /// A sandbox for `plan`, set up and waiting to be started.
    pub(crate) async fn create_sandbox(
        &self,
        plan: &InstancePlan,
        id: &InstanceId,
    ) -> Result<Created, String> {
        self.sandboxes
            .create(id.as_str(), self.launch_spec(plan, id))
            .await
            .map_err(|e| format!("could not create the sandbox: {e}"))
    }

    fn pump_output(
        &self,
        plan: &InstancePlan,
        id: &InstanceId,
        stdout: OutputPipe,
        stderr: OutputPipe,
        tail: Arc<Mutex<VecDeque<String>>>,
    ) -> JoinHandle<()> {
        let logs = self.logs.clone();
        let service = plan.service.to_string();
        let deployment = plan.deployment.to_string();
        let instance = id.to_string();
        tokio::spawn(async move {
            let mut lines = merge_lines(stdout, stderr);
            while let Some((stream, line)) = lines.recv().await {
                if let Ok(mut t) = tail.lock() {
                    if t.len() == TAIL_LINES {
                        t.pop_front();
                    }
                    // The tail goes into a failed start's reason and event, past the log
                    // hub's masking.
                    t.push_back(
                        logs.masks()
                            .apply(&service, &line)
                            .unwrap_or_else(|| line.clone()),
                    );
                }
                logs.try_write(NewLogLine {
                    service: service.clone(),
                    deployment: Some(deployment.clone()),
                    instance: Some(instance.clone()),
                    stream: match stream {
                        OutputStream::Stderr => LogStream::Stderr,
                        _ => LogStream::Stdout,
                    },
                    ts: now_ms(),
                    line,
                });
            }
        })
    }

    async fn supervise(
        self: Arc<Self>,
        plan: Arc<InstancePlan>,
        shared: Arc<InstanceShared>,
        mut sandbox: Box<dyn InstanceSandbox>,
        stop: CancellationToken,
        pump: JoinHandle<()>,
        boost: Option<BoostGuard>,
    ) {
        let id = shared.id.clone();
        let exit = tokio::select! {
            exit = sandbox.wait() => Some(exit),
            _ = stop.cancelled() => None,
        };
        // A boost still running ends with the instance: its budget goes to other starts.
        drop(boost);
        match exit {
            None => {
                let _ = self
                    .store
                    .set_instance_state(&id, InstanceState::Stopping, None);
                // CPU time is read before crun removes the cgroup.
                record_usage(&self.store, &shared);
                let exit = sandbox.stop(STOP_GRACE).await;
                let _ = self.store.set_instance_state(
                    &id,
                    InstanceState::Stopped,
                    Some(&format!("stopped ({exit})")),
                );
                self.system_line(&plan, Some(&id), format!("instance {id} stopped"));
            }
            Some(exit) => {
                // The live state counts too: the recorded one follows it only at the
                // scaler's next tick, so a death right after a freeze would read "ready".
                let frozen_now = matches!(
                    shared.upstream.state(),
                    UpstreamState::Freezing | UpstreamState::Frozen
                );
                shared.upstream.retire();
                let was_frozen = frozen_now
                    || matches!(
                        *shared
                            .recorded_state
                            .lock()
                            .unwrap_or_else(|p| p.into_inner()),
                        InstanceState::Frozen
                    );
                record_usage(&self.store, &shared);
                sandbox.destroy().await;
                // The app's last lines (why it crashed) are the event's context: let the pump
                // read them to the end of its pipes and the log hub store them first.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    let _ = pump.await;
                    self.logs.flushed().await;
                })
                .await;
                let reason = if was_frozen {
                    format!("crashed while frozen: {exit}")
                } else {
                    format!("crashed: {exit}")
                };
                let _ = self
                    .store
                    .set_instance_state(&id, InstanceState::Failed, Some(&reason));
                self.system_line(&plan, Some(&id), format!("instance {id} {reason}"));
                self.events.instance(
                    &plan.service,
                    &plan.deployment,
                    &id,
                    exit.oom_killed,
                    reason,
                );
                // Out of the routes: the next request starts a new instance if none is left,
                // and the scaler restores the minimum of a persistent service (backing off
                // when it crash-loops).
                self.services
                    .instance_gone(&plan.service, &plan.deployment, &id);
            }
        }
    }

    /// Starts an instance for the pool of a live deployment (a request is waiting for it, or
    /// the minimum is not met) and reports the outcome to the pool. The start must already be
    /// counted in the pool's `starting`.
    pub(crate) async fn start_for_pool(self: Arc<Self>, service: ServiceName, cold: bool) {
        // A deploy or an environment change can go live while this start runs; the instance
        // is then of the old plan and is not taken, and the start is made again with the new
        // one rather than failing the requests that wait for it.
        for _ in 0..3 {
            let Some((plan, pool)) = self.services.live_plan(&service) else {
                if let Some(pool) = self.services.pool(&service) {
                    pool.start_finished(Err("the service has no live deployment".into()));
                }
                return;
            };
            match self.launch(plan.clone(), None, cold).await {
                Ok(handle) => {
                    let upstream = handle.upstream().clone();
                    if self.adopt(&plan, handle) {
                        pool.start_finished(Ok(upstream));
                        return;
                    }
                }
                Err(failure) => {
                    tracing::warn!(service = %service, reason = %failure.reason, "instance start failed");
                    self.services.note_start_failure(&service);
                    pool.start_finished(Err(failure.reason));
                    return;
                }
            }
        }
        if let Some(pool) = self.services.pool(&service) {
            pool.start_finished(Err(
                "the service kept changing while an instance started".into()
            ));
        }
    }

    pub(crate) fn take_standby(&self, key: &PlanKey) -> Option<Standby> {
        self.warm.take(key)
    }

    /// Makes a standby for `plan`'s deployment in the background, unless it has one (or one
    /// is being made). Beyond the pool's capacity the least recently used one is removed.
    pub(crate) fn refill_standby(self: &Arc<Self>, plan: Arc<InstancePlan>) {
        // A static site never starts an instance, so it has no use for a sandbox ahead.
        if plan.spec.is_static_only()
            || self.shutdown.is_cancelled()
            || !self.warm.begin_fill(&plan.key())
        {
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
