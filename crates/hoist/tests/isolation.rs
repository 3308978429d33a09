//! End-to-end tests of what a sandbox lets a build and an app do: no device nodes (made or
//! opened), no capability a build does not need, `nodev,nosuid` mounts, no io_uring, an init
//! as PID 1 that reaps orphans and passes SIGTERM on, and the CPU and memory limits the README
//! promises for instances and builds, including the build timeout.
//!
//! One app (a Python http.server that reports what it can do from inside) serves every probe;
//! each test runs its own server. Every wait is bounded, and only loopback and the test's own
//! listener on the host are used.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Server, git_repo, probe_app, scratch, wait_until};

const LONG: Duration = Duration::from_secs(60);

/// The app every probe runs in. Each endpoint answers with what the kernel said, never with
/// what the test hopes to see.
const APP: &str = r#"
import ctypes, fcntl, json, os, signal, stat, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

libc = ctypes.CDLL(None, use_errno=True)


def try_open(path):
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as e:
        return f"refused: errno {e.errno}"
    try:
        if path.endswith("kvm"):
            try:
                return f"opened, KVM_GET_API_VERSION {fcntl.ioctl(fd, 0xAE00)}"
            except OSError as e:
                return f"opened, ioctl errno {e.errno}"
        return "opened"
    finally:
        os.close(fd)


def devices():
    found = []
    for path in ["/app/loop0", "/app/kvm"]:
        found.append({"path": path, "result": try_open(path) if os.path.lexists(path) else "absent"})
    for root, dirs, files in os.walk("/dev"):
        for name in files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
                dev = f"{kind} {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
                found.append({"path": path, "dev": dev, "result": try_open(path)})
    return found


def orphans(n):
    # Each round leaves a grandchild whose parent is gone: it is re-parented to PID 1, and
    # only PID 1 can reap it. The app waits for its own children, as a careful app does.
    for i in range(n):
        try:
            pid = os.fork()
        except OSError as e:
            return f"fork failed after {i}: errno {e.errno}"
        if pid == 0:
            try:
                if os.fork() == 0:
                    os._exit(0)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    return f"made {n} orphans"


def zombies():
    found = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/status") as f:
                    if any(l.startswith("State:\tZ") for l in f):
                        found.append(int(p))
            except OSError:
                pass
    return found


def fork_once():
    try:
        pid = os.fork()
    except OSError as e:
        return f"fork failed: errno {e.errno}"
    if pid == 0:
        os._exit(7)
    _, status = os.waitpid(pid, 0)
    return f"forked, child exit {os.waitstatus_to_exitcode(status)}"


def io_uring():
    params = ctypes.create_string_buffer(120)
    fd = libc.syscall(425, 8, params)
    if fd >= 0:
        os.close(fd)
        return "allowed"
    return f"refused: errno {ctypes.get_errno()}"


class Handler(BaseHTTPRequestHandler):
    def reply(self, body):
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/":
            self.reply(f"iso {os.environ.get('HOIST_INSTANCE', '')}")
        elif url.path == "/devices":
            self.reply(devices())
        elif url.path == "/capeff":
            with open("/proc/self/status") as f:
                self.reply(next(l for l in f if l.startswith("CapEff")).split()[1])
        elif url.path == "/mountinfo":
            with open("/proc/self/mountinfo") as f:
                self.reply(f.read())
        elif url.path == "/io_uring":
            self.reply(io_uring())
        elif url.path == "/orphans":
            self.reply(orphans(int(q.get("n", "10"))))
        elif url.path == "/zombies":
            self.reply(zombies())
        elif url.path == "/fork":
            self.reply(fork_once())
        elif url.path == "/which":
            self.reply(str([d for d in os.environ["PATH"].split(":") if os.path.exists(os.path.join(d, q["cmd"]))]))
        elif url.path == "/pid1":
            with open("/proc/1/cmdline", "rb") as f:
                self.reply(f.read().replace(b"\0", b" ").decode())
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


def on_term(signum, frame):
    print("got SIGTERM, stopping", flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, on_term)
ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
"#;

/// The build: it tries to make the device nodes of issue 11, shows its capabilities and
/// mounts, and installs a small Debian package as a real build would.
const BUILD: &str = r#"grep CapEff /proc/self/status | sed 's/^/BUILD /'
if mknod -m 666 /app/loop0 b 7 0 && mknod -m 666 /app/kvm c 10 232; then echo "BUILD mknod made"; else echo "BUILD mknod refused"; fi
sed 's/^/MOUNT /' /proc/self/mountinfo
apt-get update -qq
apt-get install -y -qq --no-install-recommends tree >/dev/null
echo "BUILD apt-get installed $(command -v tree)""#;

/// The isolation app in a fresh repository.
fn iso_repo(name: &str, build: Option<&str>) -> PathBuf {
    let dir = scratch(&format!("iso-src-{name}"));
    std::fs::write(dir.join("app.py"), APP).unwrap();
    let mut toml = String::from(
        "runtime = \"python\"\nstart = \"python3 app.py\"\nport = 8080\nmemory = 128\n",
    );
    if let Some(build) = build {
        toml.push_str(&format!("build = '''\n{build}\n'''\n"));
    }
    std::fs::write(dir.join("hoist.toml"), toml).unwrap();
    let repo = git_repo(&dir, name);
    let _ = std::fs::remove_dir_all(&dir);
    repo
}

/// The options of the mount `path` is on, from `/proc/self/mountinfo` text: the last mount
/// whose mount point is the longest prefix of `path` (later mounts cover earlier ones).
fn mount_options(mountinfo: &str, path: &str) -> String {
    let mut best: Option<(usize, String)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(point), Some(options)) = (fields.get(4), fields.get(5)) else {
            continue;
        };
        let covers = *point == "/" || path == *point || path.starts_with(&format!("{point}/"));
        if covers && best.as_ref().is_none_or(|(len, _)| point.len() >= *len) {
            best = Some((point.len(), options.to_string()));
        }
    }
    best.map(|(_, o)| o)
        .unwrap_or_else(|| panic!("no mount covers {path} in\n{mountinfo}"))
}

fn assert_nodev_nosuid(mountinfo: &str, who: &str) {
    for path in ["/", "/app", "/tmp"] {
        let options = mount_options(mountinfo, path);
        let set: Vec<&str> = options.split(',').collect();
        assert!(
            set.contains(&"nodev") && set.contains(&"nosuid"),
            "{who}: {path} is mounted {options}, without nodev,nosuid"
        );
    }
}

/// `CAP_MKNOD` is capability 27.
fn has_mknod(capeff_hex: &str) -> bool {
    let bits = u64::from_str_radix(capeff_hex.trim(), 16)
        .unwrap_or_else(|_| panic!("CapEff {capeff_hex:?}"));
    bits & (1 << 27) != 0
}

/// The device nodes the cgroup lets `instance` use, from the host (cgroup v1 hosts; v2 has no
/// such file, its device rules are an eBPF program).
fn devices_list(instance: &str) -> Option<String> {
    std::fs::read_to_string(
        Path::new("/sys/fs/cgroup/devices/hoist")
            .join(instance)
            .join("ctr/devices.list"),
    )
    .ok()
}

/// The devices a sandbox may use: null, zero, full, random, urandom, tty, console, ptmx, pts.
fn allowed_device(dev: &str) -> bool {
    matches!(
        dev,
        "c 1:3" | "c 1:5" | "c 1:7" | "c 1:8" | "c 1:9" | "c 5:0" | "c 5:1" | "c 5:2"
    ) || dev.starts_with("c 136:")
}

#[test]
fn builds_and_instances_can_neither_make_nor_use_device_nodes() {
    let server = Server::start("iso-devices", &[]);
    let repo = iso_repo("devices", Some(BUILD));
    server.deploy_ok(&[repo.to_str().unwrap(), "--name", "devs"]);
    let build_log = server.hoist_ok(&["logs", "devs", "--build"]);

    // The build: no CAP_MKNOD, so mknod is refused; every mount it writes to is nodev,nosuid;
    // apt-get still installs a package.
    let capeff = build_log
        .lines()
        .find_map(|l| {
            l.split_once("BUILD CapEff:")
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no CapEff in the build log:\n{build_log}"));
    assert!(
        !has_mknod(&capeff),
        "the build holds CAP_MKNOD: CapEff {capeff}"
    );
    assert!(
        build_log.contains("BUILD mknod refused"),
        "mknod in the build: {build_log}"
    );
    let build_mounts: String = build_log
        .lines()
        .filter_map(|l| l.split_once("MOUNT ").map(|(_, m)| format!("{m}\n")))
        .collect();
    assert_nodev_nosuid(&build_mounts, "the build");
    assert!(
        build_log.contains("BUILD apt-get installed /usr/bin/tree"),
        "apt-get install in the build:\n{build_log}"
    );
    assert!(
        server.get("devs", "/which?cmd=tree").1.contains("/usr/bin"),
        "the package the build installed is in the image"
    );

    // The instance: nothing it did not get from the allow-list opens, and nothing opens
    // read-write that the build tried to make.
    let (status, body) = server.get("devs", "/devices");
    assert_eq!(status, 200, "{body}");
    let found: Vec<serde_json::Value> = serde_json::from_str(&body).expect("device list");
    for d in &found {
        let path = d["path"].as_str().unwrap_or_default();
        let result = d["result"].as_str().unwrap_or_default();
        let dev = d["dev"].as_str().unwrap_or_default();
        if path.starts_with("/app/") || !allowed_device(dev) {
            assert!(
                !result.starts_with("opened"),
                "the instance opened {path} ({dev}): {result}"
            );
        }
    }
    let null = found.iter().find(|d| d["path"] == "/dev/null");
    assert_eq!(
        null.map(|d| d["result"].as_str().unwrap_or_default()),
        Some("opened"),
        "the allowed /dev/null opens: {body}"
    );
    let capeff = server.get("devs", "/capeff").1;
    assert_eq!(
        capeff.trim(),
        "0000000000000000",
        "an instance has no capabilities"
    );
    assert_nodev_nosuid(&server.get("devs", "/mountinfo").1, "the instance");

    // The device cgroup, as the host sees it: the defaults only, nothing else.
    let instance = server.get("devs", "/").1;
    let instance = instance.trim_start_matches("iso ").trim();
    if let Some(list) = devices_list(instance) {
        for rule in list.lines() {
            let mut parts = rule.split_whitespace();
            let (kind, numbers, access) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            let dev = format!("{kind} {numbers}");
            // `m` alone (mknod) is harmless without CAP_MKNOD; crun adds it for every device.
            let usable = access.contains('r') || access.contains('w');
            assert!(
                !usable || allowed_device(&dev) || dev == "c 10:200",
                "the device cgroup of {instance} allows {rule}:\n{list}"
            );
        }
    }

    // io_uring is refused, as in Docker's default profile.
    let ring = server.get("devs", "/io_uring").1;
    assert!(
        ring == "refused: errno 1" || ring == "refused: errno 38",
        "io_uring_setup from an instance: {ring}"
    );
}

#[test]
fn pid_1_reaps_orphans_and_passes_sigterm_to_the_app() {
    let server = Server::start("iso-init", &[]);
    let repo = iso_repo("init", None);
    // A whole core: 2,200 forks at the 128 MB share (7 % of a core) take minutes.
    server.deploy_ok(&[
        repo.to_str().unwrap(),
        "--name",
        "forky",
        "--memory",
        "1769",
    ]);

    // More orphans than the instance's pids limit (1024) holds: with nobody reaping them
    // the fork before the limit fails.
    let made = server.get("forky", "/orphans?n=1100").1;
    assert_eq!(made, "made 1100 orphans");
    let zombies = wait_until(
        "the orphans are reaped",
        Duration::from_secs(10),
        || {
            let z = server.get("forky", "/zombies").1;
            (z.trim() == "[]").then_some(z)
        },
        || server.get("forky", "/zombies").1,
    );
    assert_eq!(zombies, "[]");
    assert_eq!(server.get("forky", "/fork").1, "forked, child exit 7");

    // The app itself still gets SIGTERM on a stop, and stops gracefully.
    server.hoist_ok(&["stop", "forky"]);
    wait_until(
        "the app logs its SIGTERM",
        Duration::from_secs(20),
        || {
            let logs = server.hoist_ok(&["logs", "forky"]);
            logs.contains("got SIGTERM, stopping").then_some(())
        },
        || server.hoist_ok(&["logs", "forky"]),
    );
    wait_until(
        "the stopped instance is gone",
        Duration::from_secs(20),
        || server.running("forky").is_empty().then_some(()),
        || format!("{:?}", server.running("forky")),
    );
}

/// The CFS quota of `id`'s container cgroup, as the host sees it, in µs per 100 ms.
fn cpu_quota(id: &str) -> Option<i64> {
    let v1 = Path::new("/sys/fs/cgroup/cpu/hoist").join(id).join("ctr");
    if let Ok(text) = std::fs::read_to_string(v1.join("cpu.cfs_quota_us")) {
        let period: i64 = std::fs::read_to_string(v1.join("cpu.cfs_period_us"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        return Some(text.trim().parse::<i64>().ok()? * 100_000 / period);
    }
    let text = std::fs::read_to_string(
        Path::new("/sys/fs/cgroup/hoist")
            .join(id)
            .join("ctr/cpu.max"),
    )
    .ok()?;
    let mut parts = text.split_whitespace();
    let quota: i64 = parts.next()?.parse().ok()?;
    let period: i64 = parts.next()?.parse().ok()?;
    Some(quota * 100_000 / period)
}

/// The memory limit of sandbox `id` in bytes: on the parent Hoist owns (cgroup v1) or on the
/// container's own cgroup (v2).
fn memory_limit(id: &str) -> Option<u64> {
    let v1 = Path::new("/sys/fs/cgroup/memory/hoist")
        .join(id)
        .join("memory.limit_in_bytes");
    let v2 = Path::new("/sys/fs/cgroup/hoist")
        .join(id)
        .join("ctr/memory.max");
    std::fs::read_to_string(v1)
        .or_else(|_| std::fs::read_to_string(v2))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[test]
fn an_instance_gets_the_cpu_quota_of_the_readme_table() {
    // The startup boost raises a starting instance to a core; its quota is the table's once
    // the boost's settle time (short here) is over.
    let server = Server::start("iso-cpu", &["--startup-boost-settle", "100ms"]);
    let repo = git_repo(&probe_app(), "cpu");
    // README: proportional up to one core at 1769 MB (256 MB get 14 %), then 2 cores up to
    // 3538 MB. In µs of CPU per 100 ms.
    for (mb, quota) in [
        (128, 7_200),
        (256, 14_400),
        (1769, 100_000),
        (3538, 200_000),
    ] {
        let name = format!("cpu{mb}");
        server.deploy_ok(&[
            repo.to_str().unwrap(),
            "--name",
            &name,
            "--memory",
            &mb.to_string(),
            "--min-instances",
            "1",
        ]);
        let instance = common::probe_instance(&server.get(&name, "/").1);
        wait_until(
            &format!("{mb} MB: the CPU quota of {instance} to be {quota}"),
            Duration::from_secs(30),
            || (cpu_quota(&instance) == Some(quota)).then_some(()),
            || format!("{:?}", cpu_quota(&instance)),
        );
        assert_eq!(
            memory_limit(&instance),
            Some(mb * 1024 * 1024),
            "{mb} MB: the memory limit of {instance}"
        );
        server.hoist_ok(&["delete", &name, "--yes"]);
    }
}

/// The one build sandbox running on `server`, once there is one.
fn running_build(server: &Server) -> Option<String> {
    std::fs::read_dir(server.data.join("run/bundles"))
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .find(|n| n.starts_with("b-"))
}

#[test]
fn a_build_gets_two_cpus_and_4_gb_and_stops_at_the_build_timeout() {
    // A build that waits for a word from the test (over the network, to the host, on a port
    // the server opens to its sandboxes) while the test reads its limits, then stops on its
    // own; its deployment succeeds.
    let gate = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = gate.local_addr().unwrap().port();
    let server = Server::start("iso-build", &["--host-ports", &port.to_string()]);
    let repo = git_repo(&probe_app(), "build");
    let path = repo.to_str().unwrap();
    server.deploy_ok(&[path, "--name", "slow", "--env", "VERSION=first"]);

    let waiting = format!(
        "python3 -c 'import socket; s = socket.create_connection((\"host.hoist.internal\", {port}), timeout=30); s.sendall(b\"in\"); s.recv(2)'"
    );
    let (done, deploy) = std::sync::mpsc::channel();
    {
        let (path, waiting) = (path.to_string(), waiting.clone());
        let api = server.api_port;
        let data = server.data.clone();
        std::thread::spawn(move || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_hoist"))
                .args(["deploy", &path, "--name", "slow", "--env", "VERSION=second"])
                .args(["--build", &waiting])
                .env("HOIST_API", format!("http://127.0.0.1:{api}"))
                .env("HOIST_DATA_DIR", data)
                .env_remove("HOIST_TOKEN")
                .output()
                .expect("run hoist deploy");
            let _ = done.send(out);
        });
    }
    gate.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + LONG;
    let mut conn = loop {
        match gate.accept() {
            Ok((c, _)) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("the build never called the host: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut hello = [0u8; 2];
    conn.read_exact(&mut hello).unwrap();
    let build = running_build(&server).expect("the running build's sandbox");
    let quota = cpu_quota(&build);
    let memory = memory_limit(&build);
    conn.write_all(b"go").unwrap();
    drop(conn);
    let out = deploy
        .recv_timeout(LONG)
        .expect("the waiting build's deploy ends");
    assert!(
        out.status.success(),
        "the waiting build's deploy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(quota, Some(200_000), "a build's CPU quota: 2 cores");
    assert_eq!(
        memory,
        Some(4096 * 1024 * 1024),
        "a build's memory limit: 4 GB"
    );
    server.wait_for("slow", "/", "probe second", LONG);

    // A build past --build-timeout is stopped, its deployment fails naming the limit, and the
    // previous deployment keeps serving. A server of its own: a limit this short would also
    // race the build above on a busy machine.
    let server = Server::start("iso-build-timeout", &["--build-timeout", "5s"]);
    server.deploy_ok(&[path, "--name", "slow", "--env", "VERSION=second"]);
    let started = Instant::now();
    let err = server.deploy_err(&[
        path,
        "--name",
        "slow",
        "--env",
        "VERSION=third",
        "--build",
        "sleep 600",
    ]);
    assert!(
        err.contains("build exceeded its time limit of 5s"),
        "the failed deploy says why: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the build was stopped, not waited for"
    );
    assert!(server.get("slow", "/").1.starts_with("probe second"));
    wait_until(
        "the timed-out build's sandbox is gone",
        Duration::from_secs(10),
        || running_build(&server).is_none().then_some(()),
        || format!("{:?}", running_build(&server)),
    );
}
