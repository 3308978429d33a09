"""Shared pieces of the benchmarks: a throwaway `hoist server`, the CLI, git repos, medians."""

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# HOIST_BIN points the benchmarks at another build, e.g. one made with CARGO_TARGET_DIR set.
HOIST = os.environ.get("HOIST_BIN", os.path.join(ROOT, "target", "release", "hoist"))


def free_port():
    """A loopback port nothing listens on now. Every benchmark server takes two of these
    rather than fixed ones: another Hoist server (a developer's, another benchmark's) may
    hold any fixed port, and a benchmark must neither fail nor talk to that one."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A minimal stdlib Python HTTP app: the fast, dependency-free app the benchmarks deploy.
MINIMAL_APP = '''
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response: headers and body in separate small writes meet Nagle's
    # algorithm and the peer's delayed ACK on a kept-alive connection (40 ms each).
    wbufsize = -1
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\\n")
    def log_message(self, *a):
        pass

HTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), H).serve_forever()
'''


class Server:
    def __init__(self, name, extra=(), api_port=None, gw_port=None, data=None):
        self.api_port, self.gw_port = api_port or free_port(), gw_port or free_port()
        self.data = data or tempfile.mkdtemp(prefix=f"hoist-bench-{name}-")
        self.log = open(self.data + ".log", "a")
        # HOIST_TOKEN is set once the server has made its token: a token from the caller's
        # environment belongs to some other server.
        self.env = dict(os.environ, HOIST_API=f"http://127.0.0.1:{self.api_port}",
                        HOIST_DATA_DIR=self.data)
        self.env.pop("HOIST_TOKEN", None)
        self.env.setdefault("HOIST_RUNTIME_CACHE", "/var/cache/hoist/runtimes")
        self.proc = subprocess.Popen(
            [HOIST, "server", "--data-dir", self.data, "--listen", f"127.0.0.1:{self.gw_port}",
             "--api-listen", f"127.0.0.1:{self.api_port}", *extra],
            env=self.env, stdout=subprocess.DEVNULL, stderr=self.log)
        # Ready when the API on our port takes our token: a /healthz answer alone could come
        # from another server that holds the port while ours failed to bind it.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"hoist server exited ({self.proc.returncode}); see {self.log.name}")
            try:
                token = open(os.path.join(self.data, "admin-token")).read().strip()
                req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}/v1/services",
                                             headers={"Authorization": f"Bearer {token}"})
                urllib.request.urlopen(req, timeout=1).close()
                self.token = self.env["HOIST_TOKEN"] = token
                return
            except OSError:
                time.sleep(0.05)
        self.proc.kill()
        raise SystemExit("hoist server did not start within 30 s; see " + self.log.name)

    def api(self, path):
        """GET an API path with this server's token; the parsed JSON."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}",
                                     headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def hoist(self, *args):
        return subprocess.run([HOIST, *args], env=self.env, check=True, capture_output=True, text=True).stdout

    def metrics(self, prefix):
        """The values of the /metrics series whose line starts with `prefix`."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}/metrics",
                                     headers={"Authorization": f"Bearer {self.token}"})
        text = urllib.request.urlopen(req, timeout=10).read().decode()
        return [float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(prefix)]

    def logs(self, name):
        out = subprocess.run([HOIST, "logs", name, "--tail", "100000"], env=self.env, check=True,
                             capture_output=True, text=True).stdout
        return out.splitlines()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.data, ignore_errors=True)


def git_repo(src, files=None):
    repo = tempfile.mkdtemp(prefix="hoist-bench-repo-")
    if src:
        shutil.copytree(src, repo, dirs_exist_ok=True)
    for name, text in (files or {}).items():
        with open(os.path.join(repo, name), "w") as f:
            f.write(text)
    run = lambda *a: subprocess.run(["git", "-C", repo, *a], check=True, capture_output=True)
    run("init", "-q", "-b", "main")
    run("add", "-A")
    run("-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "bench")
    return repo


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def table(rows):
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


def proc_table():
    """Every process now: pid -> (command name, parent pid, user + system CPU seconds)."""
    tick = os.sysconf("SC_CLK_TCK")
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    head, _, rest = f.read().rpartition(")")
            except OSError:
                continue  # exited meanwhile
            fields = rest.split()  # fields[1] ppid, fields[11] utime, fields[12] stime
            procs[int(entry)] = (head.partition("(")[2], int(fields[1]),
                                 (int(fields[11]) + int(fields[12])) / tick)
    return procs
