//! In-process fakes of the host-facing parts (see `seams`), for the control plane's unit
//! tests: no root, no crun, no network beyond loopback.
//!
//! A fake instance is a task answering HTTP on a loopback listener of its own (reached through
//! `NetNs::in_process`); its answer lists the environment it was started with, so a test sees
//! which deployment and which env serve. A fake build is instant unless the test holds builds,
//! and then waits for the test to release them (or for its cancellation). A fake start fails
//! when the test asks it to.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use hoist_build::{AppLayer, BuildError, BuildOutput, BuildRequest, LogSink};
use hoist_core::ServiceName;
use hoist_sandbox::{
    ExitStatus, Freezer, LaunchSpec, LaunchTimings, NetNs, SandboxError, SandboxExit,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::seams::{CpuControl, Created, Host, ImageBuilder, InstanceSandbox, SandboxDriver};

/// A fake instance's CPU quota: what was written, in order.
pub(crate) struct FakeCpu {
    normal: u32,
    written: Mutex<Vec<u32>>,
    failing: AtomicBool,
}

impl FakeCpu {
    /// A quota that starts at `normal` (what the bundle gave the sandbox).
    pub(crate) fn new(normal: u32) -> Arc<FakeCpu> {
        Arc::new(FakeCpu {
            normal,
            written: Mutex::new(Vec::new()),
            failing: AtomicBool::new(false),
        })
    }

    /// The quota now.
    pub(crate) fn now(&self) -> u32 {
        self.history().last().copied().unwrap_or(self.normal)
    }

    /// Every quota written, in order.
    pub(crate) fn history(&self) -> Vec<u32> {
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Writes fail from now on, as they do once the sandbox is gone.
    pub(crate) fn fail_writes(&self) {
        self.failing.store(true, Ordering::SeqCst);
    }
}

impl CpuControl for FakeCpu {
    fn set_millicores(&self, millicores: u32) -> std::io::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        }
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(millicores);
        Ok(())
    }
}

/// A started fake instance, as the test sees it.
#[derive(Debug, Clone)]
pub(crate) struct FakeInstance {
    pub(crate) deployment: String,
    pub(crate) env: Vec<String>,
    exit: CancellationToken,
}

#[derive(Default)]
pub(crate) struct FakeSandboxes {
    /// This many of the next starts fail.
    failing_starts: AtomicU32,
    pub(crate) start_attempts: AtomicU32,
    /// When each failed start happened.
    pub(crate) failed_starts: Mutex<Vec<tokio::time::Instant>>,
    /// Started and not yet stopped or destroyed, by sandbox id.
    running: Mutex<HashMap<String, FakeInstance>>,
    /// Every sandbox's CPU quota, by sandbox id (kept after it is gone).
    cpus: Mutex<HashMap<String, Arc<FakeCpu>>>,
}

impl FakeSandboxes {
    pub(crate) fn fail_next_starts(&self, n: u32) {
        self.failing_starts.store(n, Ordering::SeqCst);
    }

    pub(crate) fn running(&self) -> Vec<FakeInstance> {
        self.lock().values().cloned().collect()
    }

    /// Makes every running instance exit by itself (exit code 1), as a crash.
    pub(crate) fn crash_all(&self) {
        for i in self.lock().values() {
            i.exit.cancel();
        }
    }

    /// The CPU quota of sandbox `id`.
    pub(crate) fn cpu(&self, id: &str) -> Option<Arc<FakeCpu>> {
        self.cpus
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, FakeInstance>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SandboxDriver for Arc<FakeSandboxes> {
    fn create<'a>(
        &'a self,
        id: &'a str,
        spec: LaunchSpec,
    ) -> BoxFuture<'a, Result<Created, SandboxError>> {
        Box::pin(async move {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(io_error("binding the fake instance's listener"))?;
            let addr = listener
                .local_addr()
                .map_err(io_error("reading the fake instance's address"))?;
            let netns = NetNs::in_process(addr)
                .map_err(io_error("opening the fake instance's namespace"))?;
            let env = spec.process.env.clone();
            let deployment = env
                .iter()
                .find_map(|e| e.strip_prefix("HOIST_DEPLOYMENT="))
                .unwrap_or_default()
                .to_string();
            let cpu = FakeCpu::new(spec.cpu_millicores);
            self.cpus
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.to_string(), cpu.clone());
            let sandbox = FakeSandbox {
                host: self.clone(),
                cpu,
                id: id.to_string(),
                instance: FakeInstance {
                    deployment,
                    env,
                    exit: CancellationToken::new(),
                },
                listener: Some(listener),
                serving: CancellationToken::new(),
                stopped: false,
            };
            Ok(Created {
                sandbox: Box::new(sandbox),
                stdout: Box::new(tokio::io::empty()),
                stderr: Box::new(tokio::io::empty()),
                netns: Arc::new(netns),
                timings: LaunchTimings::default(),
            })
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

fn io_error(context: &'static str) -> impl FnOnce(std::io::Error) -> SandboxError {
    move |source| SandboxError::Io {
        context: context.into(),
        source,
    }
}

struct FakeSandbox {
    host: Arc<FakeSandboxes>,
    cpu: Arc<FakeCpu>,
    id: String,
    instance: FakeInstance,
    /// Taken by the answering task once the sandbox starts.
    listener: Option<TcpListener>,
    serving: CancellationToken,
    /// Whether the app exited or was stopped (set by the first `wait` that sees it).
    stopped: bool,
}

impl FakeSandbox {
    fn exit_status(&self) -> SandboxExit {
        SandboxExit {
            status: ExitStatus {
                code: Some(if self.stopped { 0 } else { 1 }),
                signal: None,
            },
            oom_killed: false,
        }
    }
}

impl Drop for FakeSandbox {
    fn drop(&mut self) {
        self.serving.cancel();
        self.host.lock().remove(&self.id);
    }
}

/// Answers every request with the instance's environment, one `KEY=VALUE` a line.
async fn answer(listener: TcpListener, body: String, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        let Ok((mut conn, _)) = accepted else {
            return;
        };
        let body = body.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let read = tokio::select! {
                    r = conn.read(&mut buf) => r,
                    _ = stop.cancelled() => return,
                };
                match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes()).await;
        });
    }
}

impl InstanceSandbox for FakeSandbox {
    fn start(&mut self) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(async move {
            self.host.start_attempts.fetch_add(1, Ordering::SeqCst);
            let fail = self
                .host
                .failing_starts
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if fail {
                self.host
                    .failed_starts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(tokio::time::Instant::now());
                return Err(SandboxError::Command {
                    command: "crun start".into(),
                    stderr: "the test made this start fail".into(),
                });
            }
            if let Some(listener) = self.listener.take() {
                let body = self.instance.env.join("\n");
                tokio::spawn(answer(listener, body, self.serving.clone()));
            }
            self.host
                .lock()
                .insert(self.id.clone(), self.instance.clone());
            Ok(())
        })
    }

    fn wait(&mut self) -> BoxFuture<'_, SandboxExit> {
        Box::pin(async move {
            self.instance.exit.cancelled().await;
            self.serving.cancel();
            self.host.lock().remove(&self.id);
            self.exit_status()
        })
    }

    fn stop(mut self: Box<Self>, _grace: Duration) -> BoxFuture<'static, SandboxExit> {
        self.stopped = true;
        let exit = self.exit_status();
        Box::pin(async move {
            drop(self);
            exit
        })
    }

    fn destroy(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move { drop(self) })
    }

    fn freezer(&self) -> Option<Freezer> {
        None
    }

    fn cpu(&self) -> Arc<dyn CpuControl> {
        self.cpu.clone()
    }
}

/// A build whose layer is the fetched source as it is (`app/` in it, as a real build's upper
/// directory holds it), as if the build command changed nothing. It records the environment it saw and, while the test
/// holds builds, waits (cancellable) until they are released.
pub(crate) struct FakeBuilder {
    data_dir: PathBuf,
    open: watch::Sender<bool>,
    pub(crate) started: AtomicU32,
    /// The next build to finish fails.
    failing: AtomicBool,
    /// The env each build got, in the order they started.
    pub(crate) envs: Mutex<Vec<Vec<(String, String)>>>,
}

impl FakeBuilder {
    pub(crate) fn new(data_dir: &Path) -> FakeBuilder {
        FakeBuilder {
            data_dir: data_dir.to_path_buf(),
            open: watch::Sender::new(true),
            started: AtomicU32::new(0),
            failing: AtomicBool::new(false),
            envs: Mutex::new(Vec::new()),
        }
    }

    /// Builds from now on wait until `release`.
    pub(crate) fn hold(&self) {
        self.open.send_replace(false);
    }

    pub(crate) fn fail_next_build(&self) {
        self.failing.store(true, Ordering::SeqCst);
    }

    pub(crate) fn release(&self) {
        self.open.send_replace(true);
    }
}

impl ImageBuilder for Arc<FakeBuilder> {
    fn build<'a>(
        &'a self,
        req: BuildRequest,
        _log: &'a LogSink,
    ) -> BoxFuture<'a, Result<BuildOutput, BuildError>> {
        Box::pin(async move {
            self.envs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(req.env.clone());
            self.started.fetch_add(1, Ordering::SeqCst);
            let mut open = self.open.subscribe();
            tokio::select! {
                r = open.wait_for(|o| *o) => { r.map_err(|_| BuildError::Cancelled)?; }
                _ = req.cancel.cancelled() => return Err(BuildError::Cancelled),
            }
            let digest = format!("sha256:{}", req.id);
            let path = self.data_dir.join("layers").join(digest.replace(':', "-"));
            if self.failing.swap(false, Ordering::SeqCst) {
                return Err(BuildError::CommandFailed(
                    "exit status 1 (the test failed it)".into(),
                ));
            }
            copy_tree(&self.source_dir(&req.id), &path.join("app")).map_err(|source| {
                BuildError::Io {
                    context: "making the fake layer".into(),
                    source,
                }
            })?;
            Ok(BuildOutput {
                layer: AppLayer { digest, path },
            })
        })
    }

    fn source_dir(&self, id: &str) -> PathBuf {
        self.data_dir.join("builds").join(id).join("src")
    }

    fn discard(&self, id: &str) {
        let _ = std::fs::remove_dir_all(self.data_dir.join("builds").join(id));
    }

    fn remove_caches<'a>(
        &'a self,
        _service: &'a ServiceName,
    ) -> BoxFuture<'a, Result<(), BuildError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Copies the files and folders of `from` (git's own `.git` left out) into `to`.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() && entry.file_name() != ".git" {
            copy_tree(&entry.path(), &dest)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}

/// The fakes, and the `Host` that hands them to a platform.
pub(crate) struct Fakes {
    pub(crate) sandboxes: Arc<FakeSandboxes>,
    pub(crate) builder: Arc<FakeBuilder>,
}

impl Fakes {
    pub(crate) fn new(data_dir: &Path) -> Fakes {
        Fakes {
            sandboxes: Arc::default(),
            builder: Arc::new(FakeBuilder::new(data_dir)),
        }
    }

    pub(crate) fn host(&self) -> Host {
        Host {
            sandboxes: Arc::new(self.sandboxes.clone()),
            builder: Arc::new(self.builder.clone()),
        }
    }
}
