//! Helpers of startup_boost.rs: an app whose start burns a fixed amount of CPU, and the
//! server's own view of an instance's start and CPU quota.

use std::path::{Path, PathBuf};

use super::{Server, git_repo, scratch};

/// A stdlib Python app that burns a fixed amount of CPU (a loop of `iterations`, about 0.35 s
/// of one core on the project's machines) before it listens: a CPU-bound boot, as importing a
/// framework is.
pub fn burn_app(name: &str, iterations: u64) -> PathBuf {
    let dir = scratch(&format!("burn-src-{name}"));
    std::fs::write(
        dir.join("app.py"),
        format!(
            r#"import os
from http.server import BaseHTTPRequestHandler, HTTPServer

x = 0
for i in range({iterations}):
    x += i

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"burnt\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

HTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
"#
        ),
    )
    .expect("writing the app");
    git_repo(&dir, name)
}

/// The container cgroup's CPU quota file of an instance (cgroup v1's `cpu` hierarchy, else
/// the unified one), as crun made it: the child `ctr` of Hoist's cgroup for the sandbox.
pub fn quota_file(instance: &str) -> PathBuf {
    let v1 = Path::new("/sys/fs/cgroup/cpu");
    if v1.join("cpu.cfs_quota_us").exists() {
        v1.join("hoist").join(instance).join("ctr/cpu.cfs_quota_us")
    } else {
        Path::new("/sys/fs/cgroup/hoist")
            .join(instance)
            .join("ctr/cpu.max")
    }
}

/// The instance's quota in microseconds per 100 ms period, read from its cgroup.
pub fn quota_us(instance: &str) -> Option<i64> {
    let text = std::fs::read_to_string(quota_file(instance)).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

impl Server {
    /// The service's newest recorded instance: its id and how long it took from its app's
    /// start to its first answer (`ready_at - created_at`, the server's own clock), once it
    /// is ready.
    pub fn newest_start(&self, name: &str) -> Option<(String, i64)> {
        let v = self.service(name);
        let newest = v["instances"]
            .as_array()?
            .iter()
            .max_by_key(|i| i["created_at"].as_i64().unwrap_or(0))?
            .clone();
        let ready = newest["ready_at"].as_i64()?;
        let created = newest["created_at"].as_i64()?;
        Some((newest["id"].as_str()?.to_string(), ready - created))
    }
}
