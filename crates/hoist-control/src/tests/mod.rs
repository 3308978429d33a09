//! Unit tests of the control plane on in-process fakes (`crate::fakes`): a real SQLite store
//! and a real git checkout in a temporary directory, fake sandboxes answering HTTP on
//! loopback, fake builds the test can hold. No root, no crun; each test takes seconds.

mod boost;
mod deploys;
mod modules;
mod pushes;
mod scaling;
mod shutdown;
mod static_sites;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hoist_core::{DeploymentId, DeploymentState, ServiceName};
use hoist_gateway::{Gateway, GatewayConfig, Traffic};
use hoist_store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fakes::Fakes;
use crate::{DeployRequest, Platform, PlatformConfig, Retention};

/// The startup boost's settle time in these tests.
/// Long enough that a deploy is live (and its view read) while its first instance is still
/// boosted, on fakes that start in microseconds.
pub(crate) const BOOST_SETTLE: Duration = Duration::from_secs(2);

/// How long any awaited condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);

/// A directory removed when the test ends.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "hoist-control-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creating the test directory");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) struct TestPlatform {
    pub(crate) platform: Arc<Platform>,
    pub(crate) fakes: Fakes,
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) repo: PathBuf,
    _dir: TempDir,
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
        .args(args)
        .output()
        .expect("running git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestPlatform {
    pub(crate) async fn start() -> TestPlatform {
        let dir = TempDir::new();
        let data = dir.path().join("data");
        let cache = dir.path().join("runtimes");
        // An installed runtime, as far as the runtime cache can tell.
        std::fs::create_dir_all(cache.join("debian@13/rootfs")).expect("seeding the runtime cache");
        std::fs::write(
            cache.join("debian@13/meta.json"),
            r#"{"version":"test","size_bytes":0,"build_seconds":0.0}"#,
        )
        .expect("seeding the runtime cache");
        let repo = dir.path().join("app");
        std::fs::create_dir_all(&repo).expect("making the app repository");
        std::fs::write(repo.join("README"), "a test app\n").expect("writing the app");
        git(&repo, &["init", "-q"]);
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-qm", "init"]);
        std::fs::create_dir_all(&data).expect("making the data dir");
        let store = Arc::new(Store::open(&data.join("hoist.db")).expect("opening the store"));
        let gateway = Gateway::new(GatewayConfig::new("test.localhost"));
        let fakes = Fakes::new(&data);
        let config = PlatformConfig {
            data_dir: data,
            runtime_cache: cache,
            domain: "test.localhost".into(),
            gateway_port: 8080,
            // No gateway listens in these tests: cron runs would find nothing there.
            gateway_addr: ([127, 0, 0, 1], 9).into(),
            start_timeout: Duration::from_secs(10),
            build_timeout: Duration::from_secs(60),
            max_concurrent_builds: 4,
            warm_pool: 2,
            keep_images: 5,
            retention: Retention::default(),
            startup_boost: crate::BoostConfig {
                budget_millicores: 1000,
                settle: BOOST_SETTLE,
            },
            static_grace: Duration::from_secs(600),
        };
        let platform = Platform::start_with(config, store, gateway.clone(), fakes.host())
            .await
            .expect("starting the platform");
        TestPlatform {
            platform,
            fakes,
            gateway,
            repo,
            _dir: dir,
        }
    }

    pub(crate) fn request(&self, env: &[&str]) -> DeployRequest {
        DeployRequest {
            source: self.repo.display().to_string(),
            name: Some("app".into()),
            runtime: Some(hoist_core::Runtime::Debian.into()),
            start: Some("serve".into()),
            env: env.iter().map(|e| e.to_string()).collect(),
            ..DeployRequest::default()
        }
    }

    pub(crate) async fn deploy(&self, req: DeployRequest) -> DeploymentId {
        self.platform.deploy(req).await.expect("deploy accepted").id
    }

    pub(crate) fn state(&self, id: &DeploymentId) -> DeploymentState {
        self.platform
            .store()
            .get_deployment(id)
            .expect("reading the deployment")
            .expect("the deployment exists")
            .state
    }

    /// Waits until deployment `id`'s pipeline has ended; its final state.
    pub(crate) async fn finished(&self, id: &DeploymentId) -> DeploymentState {
        let name = svc();
        eventually(&format!("deployment {id} to finish"), || {
            let state = self.state(id);
            (!state.is_in_progress() && !self.platform.is_in_pipeline(&name, id)).then_some(state)
        })
        .await
    }

    pub(crate) async fn deploy_live(&self, req: DeployRequest) -> DeploymentId {
        let id = self.deploy(req).await;
        assert_eq!(self.finished(&id).await, DeploymentState::Live);
        id
    }

    pub(crate) fn live(&self) -> Option<DeploymentId> {
        self.platform
            .store()
            .get_service(&svc())
            .expect("reading the service")
            .and_then(|s| s.live_deployment)
    }

    /// Instances of the live deployment as `hoist status` shows them.
    pub(crate) fn running(&self) -> usize {
        self.platform
            .service_view(&svc())
            .expect("the service's view")
            .running
            .len()
    }

    /// One request through the gateway's pool of the service, as a user's request goes (it
    /// starts an instance if none runs): the environment the answering instance has.
    pub(crate) async fn get(&self) -> Answer {
        let table = self.gateway.table();
        let pool = table.route("app").expect("the service has a route");
        let admitted = pool
            .acquire(DEADLINE, Traffic::User)
            .await
            .expect("an instance for the request");
        let up = admitted.guard.upstream().clone();
        let body = tokio::time::timeout(DEADLINE, async move {
            let mut conn = up.netns.connect(up.port).await.expect("connecting");
            conn.write_all(b"GET / HTTP/1.1\r\nhost: app\r\n\r\n")
                .await
                .expect("sending");
            let mut text = String::new();
            conn.read_to_string(&mut text).await.expect("reading");
            text
        })
        .await
        .expect("an answer in time");
        let body = body.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        Answer(body.lines().map(str::to_string).collect())
    }
}

/// What a fake instance answered: its environment.
#[derive(Debug)]
pub(crate) struct Answer(Vec<String>);

impl Answer {
    pub(crate) fn var(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
    }
}

pub(crate) fn svc() -> ServiceName {
    "app".parse().expect("a valid name")
}

/// Polls `check` until it gives a value; fails the test after [`DEADLINE`].
pub(crate) async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
