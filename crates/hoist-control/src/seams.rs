//! The host-facing parts the control plane drives, behind traits: the sandbox driver (crun,
//! network namespaces, overlays, cgroups) and the image builder. Production uses
//! `hoist_sandbox::Sandboxes` and `hoist_build::Builder`; the control plane's own tests use
//! in-process fakes (`crate::fakes`), so deploy races, cancellation and back-off can be tested
//! in seconds without root. The traits are as narrow as what the control plane calls.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use hoist_build::{BuildError, BuildOutput, BuildRequest, Builder, LogSink};
use hoist_core::ServiceName;
use hoist_sandbox::{
    CpuQuota, Freezer, LaunchSpec, LaunchTimings, NetNs, Sandbox, SandboxError, SandboxExit,
    Sandboxes,
};
use tokio::io::AsyncRead;

/// A pipe of the app's output.
pub type OutputPipe = Box<dyn AsyncRead + Send + Unpin>;

/// A sandbox set up and waiting to be started, with what reaches it.
pub struct Created {
    pub sandbox: Box<dyn InstanceSandbox>,
    pub stdout: OutputPipe,
    pub stderr: OutputPipe,
    /// Where the readiness probe and the gateway connect to the app.
    pub netns: Arc<NetNs>,
    pub timings: LaunchTimings,
}

/// Makes sandboxes for instances.
pub trait SandboxDriver: Send + Sync {
    /// A sandbox for `spec`, created but not started (its process waits before its first
    /// instruction).
    fn create<'a>(
        &'a self,
        id: &'a str,
        spec: LaunchSpec,
    ) -> BoxFuture<'a, Result<Created, SandboxError>>;

    /// Stops what the driver keeps ready for later sandboxes (server stop).
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}

/// One instance's sandbox.
pub trait InstanceSandbox: Send {
    /// Lets the created sandbox's process run.
    fn start(&mut self) -> BoxFuture<'_, Result<(), SandboxError>>;
    /// Waits for the app to exit.
    fn wait(&mut self) -> BoxFuture<'_, SandboxExit>;
    /// SIGTERM, up to `grace`, then SIGKILL; everything is cleaned up.
    fn stop(self: Box<Self>, grace: Duration) -> BoxFuture<'static, SandboxExit>;
    /// Removes the sandbox (killing its process if it runs).
    fn destroy(self: Box<Self>) -> BoxFuture<'static, ()>;
    /// Freezes and thaws it, and reads its usage; `None` when it cannot be frozen.
    fn freezer(&self) -> Option<Freezer>;
    /// Its CPU quota, which the startup boost changes while it runs.
    fn cpu(&self) -> Arc<dyn CpuControl>;
}

/// Sets one instance's CPU quota while it runs (the startup boost, `boost.rs`).
pub trait CpuControl: Send + Sync {
    /// `millicores` of a core per period from now on.
    fn set_millicores(&self, millicores: u32) -> std::io::Result<()>;
}

impl CpuControl for CpuQuota {
    fn set_millicores(&self, millicores: u32) -> std::io::Result<()> {
        CpuQuota::set_millicores(self, millicores)
    }
}

/// Turns a fetched source into an image.
pub trait ImageBuilder: Send + Sync {
    fn build<'a>(
        &'a self,
        req: BuildRequest,
        log: &'a LogSink,
    ) -> BoxFuture<'a, Result<BuildOutput, BuildError>>;
    /// Where build `id`'s source must be fetched to.
    fn source_dir(&self, id: &str) -> PathBuf;
    /// Removes what build `id` left (its work dir), whatever its outcome.
    fn discard(&self, id: &str);
    /// Removes a service's package caches (the service is deleted).
    fn remove_caches<'a>(
        &'a self,
        service: &'a ServiceName,
    ) -> BoxFuture<'a, Result<(), BuildError>>;
}

/// The host-facing parts a platform runs with.
#[derive(Clone)]
pub struct Host {
    pub sandboxes: Arc<dyn SandboxDriver>,
    pub builder: Arc<dyn ImageBuilder>,
}

impl SandboxDriver for Sandboxes {
    fn create<'a>(
        &'a self,
        id: &'a str,
        spec: LaunchSpec,
    ) -> BoxFuture<'a, Result<Created, SandboxError>> {
        Box::pin(async move {
            let l = Sandboxes::create(self, id, spec).await?;
            Ok(Created {
                sandbox: Box::new(l.sandbox),
                stdout: Box::new(l.stdout),
                stderr: Box::new(l.stderr),
                netns: l.netns,
                timings: l.timings,
            })
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(Sandboxes::shutdown(self))
    }
}

impl InstanceSandbox for Sandbox {
    fn start(&mut self) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(Sandbox::start(self))
    }

    fn wait(&mut self) -> BoxFuture<'_, SandboxExit> {
        Box::pin(Sandbox::wait(self))
    }

    fn stop(self: Box<Self>, grace: Duration) -> BoxFuture<'static, SandboxExit> {
        Box::pin(Sandbox::stop(*self, grace))
    }

    fn destroy(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(Sandbox::destroy(*self))
    }

    fn freezer(&self) -> Option<Freezer> {
        Some(Sandbox::freezer(self))
    }

    fn cpu(&self) -> Arc<dyn CpuControl> {
        Arc::new(Sandbox::cpu_quota(self))
    }
}

impl ImageBuilder for Builder {
    fn build<'a>(
        &'a self,
        req: BuildRequest,
        log: &'a LogSink,
    ) -> BoxFuture<'a, Result<BuildOutput, BuildError>> {
        Box::pin(Builder::build(self, req, log))
    }

    fn source_dir(&self, id: &str) -> PathBuf {
        Builder::source_dir(self, id)
    }

    fn discard(&self, id: &str) {
        Builder::discard(self, id)
    }

    fn remove_caches<'a>(
        &'a self,
        service: &'a ServiceName,
    ) -> BoxFuture<'a, Result<(), BuildError>> {
        Box::pin(Builder::remove_caches(self, service))
    }
}
