//! Instances: start one from a deployment's image, wait until it answers HTTP, then supervise
//! it until it is stopped or dies; a dead instance of a live deployment is replaced.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hoist_build::{OutputStream, merge_lines};
use hoist_core::{DeploymentId, InstanceId, InstanceState, ServiceName, ServiceSpec};
use hoist_gateway::Upstream;
use hoist_sandbox::{LaunchSpec, Privileges, ProcessSpec, Sandbox, probe_http};
use hoist_store::{LogStream, NewLogLine, now_ms};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Platform;
use crate::platform::LiveDeployment;

/// Everything needed to start an instance of one deployment.
#[derive(Debug, Clone)]
pub(crate) struct InstancePlan {
    pub(crate) service: ServiceName,
    pub(crate) deployment: DeploymentId,
    /// App layer first, runtime root filesystem last.
    pub(crate) layers: Vec<PathBuf>,
    pub(crate) spec: ServiceSpec,
}

pub(crate) struct InstanceHandle {
    pub(crate) id: InstanceId,
    upstream: Arc<Upstream>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl InstanceHandle {
    pub(crate) fn ready_upstream(&self) -> Option<Arc<Upstream>> {
        Some(self.upstream.clone())
    }

    /// Asks the instance to stop (SIGTERM, then SIGKILL after the grace period); the returned
    /// handle completes once it is gone.
    pub(crate) fn stop(self) -> JoinHandle<()> {
        self.stop.cancel();
        self.task
    }

    /// For an instance already taken out of the routes: lets the requests it is serving finish
    /// (up to `DRAIN_LIMIT`), then stops it.
    pub(crate) async fn drain_and_stop(self) {
        let deadline = Instant::now() + DRAIN_LIMIT;
        while self.upstream.in_flight() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.stop().await;
    }
}

const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long a replaced instance may go on serving requests it already had.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const TAIL_LINES: usize = 15;

/// Why an instance could not become ready, with the app's last lines.
#[derive(Debug)]
pub(crate) struct StartFailure {
    pub(crate) reason: String,
}

impl Platform {
    fn launch_spec(&self, plan: &InstancePlan, id: &InstanceId) -> LaunchSpec {
        let spec = &plan.spec;
        let mut env = vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            // Only /tmp is writable, so that is where tools that want a home write.
            "HOME=/tmp".into(),
            "LANG=C.UTF-8".into(),
            // Python buffers stdout when it is a pipe; logs must show up as they happen.
            "PYTHONUNBUFFERED=1".into(),
            format!("PORT={}", spec.port.get()),
            format!("HOIST_SERVICE={}", spec.name),
            format!("HOIST_DEPLOYMENT={}", plan.deployment),
            format!("HOIST_INSTANCE={id}"),
        ];
        env.extend(spec.env.to_env_list());
        LaunchSpec {
            hostname: spec.name.to_string(),
            layers: plan.layers.clone(),
            upper: None,
            process: ProcessSpec {
                args: vec!["bash".into(), "-c".into(), spec.start_command.clone()],
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

    fn system_line(&self, plan: &InstancePlan, id: Option<&InstanceId>, line: String) {
        self.logs.try_write(NewLogLine {
            service: plan.service.to_string(),
            deployment: Some(plan.deployment.to_string()),
            instance: id.map(|i| i.to_string()),
            stream: LogStream::System,
            ts: now_ms(),
            line,
        });
    }

    /// Starts an instance and returns once it answers HTTP on its port.
    pub(crate) async fn launch(
        self: &Arc<Self>,
        plan: Arc<InstancePlan>,
        cancel: Option<&CancellationToken>,
    ) -> Result<InstanceHandle, StartFailure> {
        let never = CancellationToken::new();
        let cancel = cancel.unwrap_or(&never);
        let id = InstanceId::generate();
        let fail = |reason: String| StartFailure { reason };
        self.store
            .insert_instance(&id, &plan.service, &plan.deployment)
            .map_err(|e| fail(e.to_string()))?;
        self.system_line(&plan, Some(&id), format!("starting instance {id}"));
        let started = Instant::now();
        let launched = match self
            .sandboxes
            .launch(id.as_str(), self.launch_spec(&plan, &id))
            .await
        {
            Ok(l) => l,
            Err(e) => {
                let reason = format!("could not create the sandbox: {e}");
                let _ = self
                    .store
                    .set_instance_state(&id, InstanceState::Failed, Some(&reason));
                return Err(fail(reason));
            }
        };
        let timings = launched.timings;
        let netns = launched.netns.clone();
        let mut sandbox = launched.sandbox;
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        let pump = self.pump_output(&plan, &id, launched.stdout, launched.stderr, tail.clone());

        let port = plan.spec.port.get();
        let deadline = started + self.config.start_timeout;
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
                    self.config.start_timeout.as_secs()
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
            return Err(fail(reason));
        }
        let _ = self
            .store
            .set_instance_state(&id, InstanceState::Ready, None);
        let total = started.elapsed();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let until_ready =
            total.saturating_sub(timings.network + timings.bundle + timings.crun_spawn);
        self.system_line(
            &plan,
            Some(&id),
            format!(
                "instance {id} ready in {:.1} ms (network {:.1} ms, bundle {:.1} ms, crun spawn {:.1} ms, boot and readiness {:.1} ms)",
                ms(total),
                ms(timings.network),
                ms(timings.bundle),
                ms(timings.crun_spawn),
                ms(until_ready)
            ),
        );
        let upstream = Upstream::new(id.to_string(), netns, port);
        let stop = CancellationToken::new();
        let task = tokio::spawn(
            self.clone()
                .supervise(plan, id.clone(), sandbox, stop.clone()),
        );
        Ok(InstanceHandle {
            id,
            upstream,
            stop,
            task,
        })
    }

    fn pump_output(
        &self,
        plan: &InstancePlan,
        id: &InstanceId,
        stdout: tokio::process::ChildStdout,
        stderr: tokio::process::ChildStderr,
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
                    t.push_back(line.clone());
                }
                logs.write(NewLogLine {
                    service: service.clone(),
                    deployment: Some(deployment.clone()),
                    instance: Some(instance.clone()),
                    stream: match stream {
                        OutputStream::Stderr => LogStream::Stderr,
                        _ => LogStream::Stdout,
                    },
                    ts: now_ms(),
                    line,
                })
                .await;
            }
        })
    }

    async fn supervise(
        self: Arc<Self>,
        plan: Arc<InstancePlan>,
        id: InstanceId,
        mut sandbox: Sandbox,
        stop: CancellationToken,
    ) {
        let started = Instant::now();
        let exit = tokio::select! {
            exit = sandbox.wait() => Some(exit),
            _ = stop.cancelled() => None,
        };
        match exit {
            None => {
                let _ = self
                    .store
                    .set_instance_state(&id, InstanceState::Stopping, None);
                let exit = sandbox.stop(STOP_GRACE).await;
                let _ = self.store.set_instance_state(
                    &id,
                    InstanceState::Stopped,
                    Some(&format!("stopped ({exit})")),
                );
                self.system_line(&plan, Some(&id), format!("instance {id} stopped"));
            }
            Some(exit) => {
                sandbox.destroy().await;
                let reason = format!("crashed: {exit}");
                let _ = self
                    .store
                    .set_instance_state(&id, InstanceState::Failed, Some(&reason));
                self.system_line(&plan, Some(&id), format!("instance {id} {reason}"));
                let still_live = self.instance_gone(&plan.service, &plan.deployment, &id);
                if still_live && !self.shutdown.is_cancelled() {
                    // A crash loop backs off; an instance that ran a while restarts at once.
                    let delay = if started.elapsed() > Duration::from_secs(30) {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(1)
                    };
                    tokio::spawn(self.clone().replace(plan, delay));
                }
            }
        }
    }

    /// Starts a replacement instance for a live deployment, retrying with back-off. Boxed:
    /// launch → supervise → replace → launch is a cycle the compiler cannot size.
    pub(crate) fn replace(
        self: Arc<Self>,
        plan: Arc<InstancePlan>,
        mut delay: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            loop {
                tokio::time::sleep(delay).await;
                if self.shutdown.is_cancelled() || !self.is_live(&plan) {
                    return;
                }
                match self.start_instance(plan.clone()).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(service = %plan.service, error = %e, "replacing instance");
                        delay = (delay * 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
                    }
                }
            }
        })
    }

    fn is_live(&self, plan: &InstancePlan) -> bool {
        self.state()
            .get(&plan.service)
            .and_then(|s| s.live.as_ref())
            .is_some_and(|l| l.id == plan.deployment)
    }

    /// Starts an instance of a deployment that is already live and adds it to the routes.
    pub(crate) async fn start_instance(
        self: &Arc<Self>,
        plan: Arc<InstancePlan>,
    ) -> Result<(), String> {
        let handle = self
            .launch(plan.clone(), None)
            .await
            .map_err(|f| f.reason)?;
        let mut services = self.state();
        match services
            .get_mut(&plan.service)
            .and_then(|s| s.live.as_mut())
            .filter(|l| l.id == plan.deployment)
        {
            Some(LiveDeployment { instances, .. }) => {
                instances.push(handle);
                drop(services);
                self.publish_routes();
            }
            None => {
                drop(services);
                self.stopping.spawn(handle.stop());
            }
        }
        Ok(())
    }
}
