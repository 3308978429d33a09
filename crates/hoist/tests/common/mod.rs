//! The harness for end-to-end tests: each test runs its own `hoist server` (the binary cargo
//! built) on free loopback ports with its own data dir, sharing one runtime cache so every
//! runtime is built once per machine, and drives it with the real CLI.

#![allow(dead_code)]

pub mod boost;
pub mod hooks;
pub mod runtimes;
mod tokens;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn runtime_cache() -> PathBuf {
    std::env::var_os("HOIST_RUNTIME_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/hoist/runtimes"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hoist-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

pub struct Server {
    child: Option<Child>,
    pub data: PathBuf,
    pub api_port: u16,
    pub gw_port: u16,
    extra: Vec<String>,
    /// The address the gateway and the API listen on.
    host: &'static str,
}

impl Server {
    pub fn start(name: &str, extra: &[&str]) -> Server {
        Server::start_env(name, extra, &[])
    }

    /// A server on a fresh data dir and free ports, listening on `host`, not started yet.
    fn unstarted(name: &str, extra: &[&str], host: &'static str) -> Server {
        Server {
            child: None,
            data: scratch(name),
            api_port: free_port(),
            gw_port: free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            host,
        }
    }

    /// Starts the server again on the same data dir and ports (after `terminate` or `kill9`),
    /// waiting until it answers.
    pub fn spawn(&mut self) {
        self.spawn_env(&[]);
    }

    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9`, as a crash or an OOM kill of the server would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, as a service manager's stop does; waits up to `within` for the exit.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn hoist(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_hoist"))
            .args(args)
            .env("HOIST_API", format!("http://127.0.0.1:{}", self.api_port))
            .env("HOIST_DATA_DIR", &self.data)
            .env_remove("HOIST_TOKEN")
            .output()
            .expect("run hoist")
    }

    /// Deploys and asserts success; returns the CLI's stdout.
    pub fn deploy_ok(&self, args: &[&str]) -> String {
        let out = self.hoist(&[&["deploy"], args].concat());
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            out.status.success(),
            "deploy {args:?} failed:\n{stdout}\n{stderr}"
        );
        stdout
    }

    /// Deploys expecting failure; returns stderr.
    pub fn deploy_err(&self, args: &[&str]) -> String {
        let out = self.hoist(&[&["deploy"], args].concat());
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success(),
            "deploy {args:?} should have failed:\n{stdout}"
        );
        stderr
    }

    pub fn get(&self, service: &str, path: &str) -> (u16, String) {
        http(
            self.gw_port,
            &format!("{service}.localhost:{}", self.gw_port),
            path,
        )
        .unwrap_or((0, String::new()))
    }

    /// Polls until `service` answers `path` with 200 and a body containing `needle`.
    pub fn wait_for(&self, service: &str, path: &str, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut last = (0, String::new());
        while Instant::now() < deadline {
            last = self.get(service, path);
            if last.0 == 200 && last.1.contains(needle) {
                return last.1;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{service}{path} did not answer with {needle:?} within {within:?}; last: {last:?}");
    }

    pub fn status(&self, name: &str) -> String {
        let out = self.hoist(&["status", name]);
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM: the server stops its instances and cleans up their sandboxes.
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// A plain HTTP/1.1 GET with `Connection: close`; returns status and body.
pub fn http(port: u16, host: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = match text.split_once("\r\n\r\n") {
        Some((head, body))
            if head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked") =>
        {
            dechunk(body)
        }
        Some((_, body)) => body.to_string(),
        None => String::new(),
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Copies `dir` into a fresh git repository (one commit on `main`) and returns its path.
pub fn git_repo(dir: &Path, name: &str) -> PathBuf {
    let repo = scratch(&format!("repo-{name}"));
    copy_dir(dir, &repo);
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    commit_all(&repo, "init");
    repo
}

/// Commits every tracked change (and, after `git add`, new files) as a throwaway author.
pub fn commit_all(repo: &Path, message: &str) {
    let args = [
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "commit",
        "-qam",
        message,
    ];
    git(repo, &args);
}

pub fn git(repo: &Path, args: &[&str]) {
    let st = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .status()
        .expect("git");
    assert!(st.success(), "git {args:?}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let dest = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).expect("copy");
        }
    }
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn example(name: &str) -> PathBuf {
    workspace().join("examples").join(name)
}

pub fn probe_app() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps/probe")
}

/// An HTTP answer read off a raw socket.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `head` (and nothing else) on a new connection to `port` and reads the whole answer
/// (`Connection: close` is up to the caller), giving up after `timeout`.
pub fn exchange(port: u16, head: &[u8], timeout: Duration) -> std::io::Result<Answer> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    // A server may answer (and close) before it has read everything; its answer still counts.
    let written = s.write_all(head);
    let mut buf = Vec::new();
    let read = s.read_to_end(&mut buf);
    if buf.is_empty() {
        written?;
        read?;
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err(std::io::Error::other(format!(
            "no complete answer: {text:?}"
        )));
    };
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// Polls `check` every 50 ms until it gives a value or `within` is over (then panics with
/// `what` and the last value seen by `describe`).
pub fn wait_until<T>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("{what}: not within {within:?}; now: {}", describe());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The instance id in the probe app's answer to `/` (`probe VERSION INSTANCE`).
pub fn probe_instance(body: &str) -> String {
    body.split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no instance id in {body:?}"))
        .to_string()
}

/// Today as the server counts usage days (UTC, `YYYY-MM-DD`).
pub fn utc_day_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

impl Server {
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data.join("admin-token"))
            .expect("admin token")
            .trim()
            .to_string()
    }

    /// One authenticated API call; returns the status and the JSON body (Null if none).
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
        let body = body.unwrap_or("");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.token(),
            body.len()
        );
        let answer = exchange(self.api_port, head.as_bytes(), Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let json = serde_json::from_str(answer.body.trim()).unwrap_or(serde_json::Value::Null);
        (answer.status, json)
    }

    /// `GET /v1/services/NAME`, asserting success.
    pub fn service(&self, name: &str) -> serde_json::Value {
        let (status, v) = self.api("GET", &format!("/v1/services/{name}"), None);
        assert_eq!(status, 200, "GET /v1/services/{name}: {v}");
        v
    }

    /// The service's running instances as `(id, state)`.
    pub fn running(&self, name: &str) -> Vec<(String, String)> {
        self.service(name)["running"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                (
                    i["id"].as_str().unwrap_or_default().to_string(),
                    i["state"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Runs the CLI, asserting success; returns stdout.
    pub fn hoist_ok(&self, args: &[&str]) -> String {
        let out = self.hoist(args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "hoist {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Runs the CLI, asserting failure; returns stderr.
    pub fn hoist_err(&self, args: &[&str]) -> String {
        let out = self.hoist(args);
        assert!(
            !out.status.success(),
            "hoist {args:?} should have failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    }

    /// Deploys the probe app as `name` (from a fresh repository) with extra deploy flags.
    pub fn deploy_probe(&self, name: &str, flags: &[&str]) {
        let repo = git_repo(&probe_app(), name);
        self.deploy_ok(&[&[repo.to_str().unwrap(), "--name", name], flags].concat());
    }

    /// A raw request for `service` on the gateway: `GET path` plus `extra` header lines.
    pub fn raw_get(&self, service: &str, path: &str, extra: &str, timeout: Duration) -> Answer {
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {service}.localhost:{}\r\n{extra}Connection: close\r\n\r\n",
            self.gw_port
        );
        exchange(self.gw_port, head.as_bytes(), timeout)
            .unwrap_or_else(|e| panic!("GET {service}{path}: {e}"))
    }

    /// The host PID of an instance's container init (written by `crun create`).
    pub fn instance_pid(&self, instance: &str) -> Option<i32> {
        std::fs::read_to_string(self.data.join("run/bundles").join(instance).join("pid"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
    }
}

impl Server {
    /// Like [`Server::start`], but with the gateway and the API on every address (`0.0.0.0`),
    /// as an operator may bind them: then only the host filter keeps instances off them.
    pub fn start_wildcard(name: &str, extra: &[&str]) -> Server {
        let mut s = Server::unstarted(name, extra, "0.0.0.0");
        s.spawn();
        s
    }
}

/// The reach app: `/reach?port=N` tries a TCP connect to `host.hoist.internal:N`.
pub fn reach_app() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps/reach")
}

/// Every regular file under `dir` (symlinks not followed) that contains `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if meta.is_dir() {
            found.extend(files_containing(&e.path(), needle));
        } else if meta.is_file()
            && let Ok(bytes) = std::fs::read(e.path())
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(e.path());
        }
    }
    found
}

/// `n` random lowercase hex digits (from the kernel's generator), for secrets a test plants.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n.div_ceil(2)];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("/dev/urandom");
    let mut hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex.truncate(n);
    hex
}

impl Server {
    /// Like `start`, with extra environment variables for the server process.
    pub fn start_env(name: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut s = Server::unstarted(name, extra, "127.0.0.1");
        s.spawn_env(env);
        s
    }

    /// Starts the server again on the same data dir and ports with `env` (after `terminate`
    /// or `kill9`), waiting until it answers.
    pub fn spawn_env(&mut self, env: &[(&str, &str)]) {
        let cmd = self.command(env);
        self.launch(cmd);
    }

    /// Runs `cmd` (a server command line) as this server, its stderr to the server log, and
    /// waits until it answers.
    fn launch(&mut self, mut cmd: Command) {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(self.open_log())
            .spawn()
            .unwrap_or_else(|e| panic!("start hoist server ({cmd:?}): {e}"));
        self.child = Some(child);
        wait_until(
            "hoist server answers /healthz",
            Duration::from_secs(20),
            || matches!(http(self.api_port, "127.0.0.1", "/healthz"), Ok((200, _))).then_some(()),
            || format!("see {}", self.log_file().display()),
        );
    }

    /// Runs `hoist server` on this data dir with `env` when it is expected not to come up:
    /// returns its exit status (None if it still ran after `within`, then killed) and stderr.
    pub fn start_refused(
        &self,
        env: &[(&str, &str)],
        within: Duration,
    ) -> (Option<std::process::ExitStatus>, String) {
        let err_path = self.data.with_extension("refused.log");
        let err = std::fs::File::create(&err_path).expect("stderr file");
        let mut child = self
            .command(env)
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start hoist server");
        let status = wait_exit(&mut child, within);
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        (status, stderr)
    }

    fn command(&self, env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hoist"));
        cmd.arg("server")
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--listen")
            .arg(format!("{}:{}", self.host, self.gw_port))
            .arg("--api-listen")
            .arg(format!("{}:{}", self.host, self.api_port))
            .args(&self.extra)
            .env("HOIST_RUNTIME_CACHE", runtime_cache())
            .env_remove("HOIST_MASTER_KEY")
            .envs(env.iter().copied());
        cmd
    }

    fn open_log(&self) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.with_extension("log"))
            .expect("server log")
    }

    /// `GET /metrics` (the Prometheus text), asserting 200.
    pub fn metrics_text(&self) -> String {
        let head = format!(
            "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.token()
        );
        let a = exchange(self.api_port, head.as_bytes(), Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
        assert_eq!(a.status, 200, "{a:?}");
        a.body
    }

    /// The sandboxes the server has now (instances, spares, builds): ids and network
    /// namespaces.
    pub fn sandbox_ids(&self) -> (Vec<String>, Vec<String>) {
        let mut ids = Vec::new();
        let mut netns = Vec::new();
        for e in std::fs::read_dir(self.data.join("run/bundles"))
            .into_iter()
            .flatten()
            .flatten()
        {
            ids.push(e.file_name().to_string_lossy().to_string());
            if let Ok(ns) = std::fs::read_to_string(e.path().join("netns")) {
                netns.push(ns.trim().to_string());
            }
        }
        (ids, netns)
    }
}

/// The value of the first sample of `text` (Prometheus exposition) whose line starts with
/// `series`, if any.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Every mounted cgroup hierarchy (v1 controllers, named ones like systemd, and the unified
/// v2 one), from the mount table: wherever crun or Hoist may have made a sandbox's cgroup.
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("/proc/self/mountinfo");
    let mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| {
            // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
            let (before, after) = l.split_once(" - ")?;
            let fstype = after.split_whitespace().next()?;
            (fstype == "cgroup" || fstype == "cgroup2")
                .then(|| before.split_whitespace().nth(4).map(PathBuf::from))?
        })
        .collect();
    assert!(
        !mounts.is_empty(),
        "no cgroup hierarchy is mounted:\n{info}"
    );
    mounts
}

/// What is left on the host of the sandboxes `ids` (and network namespaces `netns`): mounts,
/// cgroups (`hoist/ID`) in every mounted hierarchy (see [`cgroup_mounts`]), crun state under
/// `run` (the data dir's run dir, resolved before it went away) and network namespaces.
pub fn host_leftovers(run: &Path, ids: &[String], netns: &[String]) -> Vec<String> {
    let bases = cgroup_mounts();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found = Vec::new();
    for id in ids {
        if mounts.contains(&format!("/{id}/")) || mounts.contains(&format!("/{id} ")) {
            found.push(format!("mount of {id}"));
        }
        for base in &bases {
            let cg = base.join("hoist").join(id);
            if cg.exists() {
                found.push(format!("cgroup {}", cg.display()));
            }
        }
        if run.join("crun").join(id).exists() {
            found.push(format!("crun container {id}"));
        }
    }
    for ns in netns {
        if Path::new("/run/netns").join(ns).exists() {
            found.push(format!("netns {ns}"));
        }
    }
    found
}

/// The app of claims.rs and limits.rs (tests/apps/claims): known workloads, standard library
/// only.
pub fn claims_app() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps/claims")
}

/// Deploys the claims app as `name` from a fresh repository; returns the deploy's output.
pub fn deploy_claims(server: &Server, name: &str, flags: &[&str]) -> String {
    let repo = git_repo(&claims_app(), &format!("{name}-{}", server.api_port));
    server.deploy_ok(&[&[repo.to_str().unwrap(), "--name", name], flags].concat())
}

/// One default server for the tests of a binary that hold it at the same time; the last one
/// to let go stops it (a static `Server` would never be dropped, leaving its sandboxes).
pub fn shared_server() -> std::sync::Arc<Server> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, Weak};
    static SLOT: Mutex<Weak<Server>> = Mutex::new(Weak::new());
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    let mut slot = SLOT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = slot.upgrade() {
        return s;
    }
    let n = STARTED.fetch_add(1, Ordering::Relaxed);
    let s = Arc::new(Server::start(&format!("shared-{n}"), &[]));
    *slot = Arc::downgrade(&s);
    s
}

/// A word no other run or test writes.
pub fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{tag}-{nanos:x}-{}", std::process::id())
}

/// Runs `hoist server` with `args`, which it should refuse; returns its exit code (None if it
/// had to be killed: it did not refuse within 30 s) and stderr. It gets a scratch data dir
/// and free ports (unless `args` name them), so a server that wrongly starts touches nothing
/// and is stopped.
pub fn refused_server(args: &[&str]) -> (Option<i32>, String) {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let data = scratch(&format!("refused-server-{run}"));
    let stderr_path = data.with_extension("stderr");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(["server", "--data-dir"])
        .arg(&data)
        .args(
            ["--listen", "--api-listen"]
                .into_iter()
                .filter(|flag| !args.contains(flag))
                .flat_map(|flag| [flag, "127.0.0.1:0"]),
        )
        .args(args)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("run hoist server");
    let code = wait_exit(&mut child, Duration::from_secs(30)).and_then(|s| s.code());
    let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let _ = std::fs::remove_file(&stderr_path);
    let _ = std::fs::remove_dir_all(&data);
    (code, text)
}

/// Waits up to `within` for `child` to exit on its own; kills it (and returns `None`) if it
/// is still running then.
pub fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Server {
    /// `hoist deploy ARGS --no-wait`: the new deployment's id.
    pub fn submit(&self, args: &[&str]) -> String {
        let out = self.hoist_ok(&[&["deploy"], args, &["--no-wait"]].concat());
        out.split_whitespace()
            .find(|w| w.starts_with("d-"))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no deployment id in {out}"))
    }

    /// `GET /v1/deployments/ID`.
    pub fn deployment(&self, id: &str) -> serde_json::Value {
        let (status, d) = self.api("GET", &format!("/v1/deployments/{id}"), None);
        assert_eq!(status, 200, "{d}");
        d
    }

    /// Reads the states of deployments `ids` every 100 ms, handing each reading to `each`,
    /// until all are live; fails if one fails or is cancelled, or after `within`.
    pub fn follow_until_live(
        &self,
        ids: &[&str],
        within: Duration,
        mut each: impl FnMut(&[String]),
    ) {
        let deadline = Instant::now() + within;
        loop {
            let states: Vec<String> = ids
                .iter()
                .map(|id| {
                    self.deployment(id)["state"]
                        .as_str()
                        .unwrap_or("")
                        .to_string()
                })
                .collect();
            each(&states);
            if states.iter().all(|s| s == "live") {
                return;
            }
            assert!(
                states.iter().all(|s| s != "failed" && s != "cancelled"),
                "{states:?}"
            );
            assert!(Instant::now() < deadline, "not all live: {states:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Server {
    /// [`Server::start`] with the server's open-file limit (soft and hard) set to `nofile`
    /// (by `prlimit`, which then runs the server in its own process).
    pub fn start_with_nofile(name: &str, nofile: u64, extra: &[&str]) -> Server {
        let mut s = Server::unstarted(name, extra, "127.0.0.1");
        // The server's own command line, run by prlimit.
        let server = s.command(&[]);
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={nofile}:{nofile}"))
            .arg(server.get_program())
            .args(server.get_args());
        for (key, value) in server.get_envs() {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        s.launch(cmd);
        s
    }

    /// Where the server's stderr goes.
    pub fn log_file(&self) -> PathBuf {
        self.data.with_extension("log")
    }

    /// The server process's resident memory in KB (0 if it is not running).
    pub fn rss_kb(&self) -> u64 {
        let Some(pid) = self.pid() else { return 0 };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }
}
pub mod cron;
pub mod staticwire;
pub mod upload;
