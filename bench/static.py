"""Static files served by Hoist's gateway against nginx serving the same files from disk.

The files: a 2 KB JavaScript bundle with a content hash in its name (asked for with and
without `Accept-Encoding: gzip`) and a 1 MB incompressible file, written once into a `dist/`
folder. nginx (Debian's, `worker_processes 2`, one per core, `worker_priority` the gateway's
nice, `sendfile on`, `tcp_nopush on`, `gzip_static on` with the `.gz` files made by
`gzip -9 -k` beside the originals, `gzip_vary on`, keep-alive with its default 65 s timeout,
its access log on as Debian ships it) serves that folder as its root. Hoist serves it from
its content-addressed store (and memory), through the gateway, with its access records on as
it ships:

- HOIST_STATIC=server (the default when `hoist deploy` has `--static`): a real `hoist server`
  and `hoist deploy` of a repository holding `dist/` and a hoist.toml with `runtime =
  "python"`, `static = "dist"` and no start command: a static-only site, no instance runs;
- HOIST_STATIC=harness: the gateway crate's `static_site` example (the same Gateway, worker
  count, nice value, Site and access records, in a process of its own), built with
  `cargo build --release -p hoist-gateway --example static_site`.

For each file, `wrk -t2 -c64 -d10s --latency` against each server on loopback, alternating
which goes first, ROUNDS rounds after a warm-up; medians of requests/s and p99, the median of
each round's hoist/nginx ratios, and each server's own CPU time per request (from /proc).
wrk and both servers share the machine's 2 cores. Each round waits (up to QUIET_WAIT s) for a
quiet second and the idle share seen is printed with the results.

At saturation the p99 says more about the machine's scheduler than about the server: wrk's two
threads and the server's threads want more than the 2 cores, and a thread that loses its core
waits for the next scheduler tick (4 ms at this kernel's HZ=250), so both servers' p99 sit
near 4 ms and swing between 2 and 8 ms from round to round; the faster server also keeps wrk
busier, which lengthens wrk's own share of the latency. So each small file is also measured at
equal load: the same wrk with a Lua `delay()` of PACE_MS ms (default 2) between a connection's
requests, which offers both servers the same rate (about 23,000 requests/s, a third of either's
capacity) and compares their p99 at it, the way wrk2's fixed-rate mode would (wrk2 is not
packaged). PACE_MS=0 leaves that pass out. The 1 MB file is not paced: its rate is bound by the
copies at any delay.

    sudo python3 bench/static.py            # ROUNDS=5 DURATION=10 PACE_MS=2 HOIST_STATIC=harness ...
"""

import gzip
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from common import HOIST, ROOT, Server, free_port, git_repo, median, table
from proxy import cpu_seconds, ensure_tools, pct, wait_quiet, wrk

ROUNDS = int(os.environ.get("ROUNDS", "3"))
DURATION = int(os.environ.get("DURATION", "10"))
QUIET_WAIT = int(os.environ.get("QUIET_WAIT", "60"))
NICE = int(os.environ.get("GATEWAY_NICE", "-5"))
PACE_MS = int(os.environ.get("PACE_MS", "2"))
CONNS, THREADS = 64, 2
NAME = "site"
HOST = f"{NAME}.localhost"
HARNESS = os.environ.get(
    "STATIC_SITE_BIN", os.path.join(ROOT, "target", "release", "examples", "static_site"))

SMALL = "/assets/app.3f9c1a2b.js"
LARGE = "/media/clip.bin"
CASES = [
    ("2 KB .js, identity", SMALL, ()),
    ("2 KB .js, Accept-Encoding: gzip", SMALL, ("Accept-Encoding: gzip",)),
    ("1 MB file, identity", LARGE, ()),
]
# The cases also measured at equal load (see the docstring).
PACED = {SMALL}
# ONLY=1MB (a substring of the labels) runs only the matching cases.
CASES = [c for c in CASES if os.environ.get("ONLY", "") in c[0]]
# GATEWAY_WORKERS=N runs the server with --gateway-workers N instead of its default.
WORKERS = os.environ.get("GATEWAY_WORKERS")
# REQUEST_LOGGING=off runs the server with --no-request-logging (nginx keeps its access log).
LOGGING_OFF = os.environ.get("REQUEST_LOGGING") == "off"

NGINX_CONF = '''worker_processes 2;
worker_priority {nice};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {prefix}/access.log;
    sendfile on;
    tcp_nopush on;
    gzip_static on;
    gzip_vary on;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
'''


def write_site(root):
    """dist/ with the two files; nginx's .gz beside the bundle."""
    js = "".join(f"export function f{i}(a) {{ return a + {i}; }}\n" for i in range(60))[:2048]
    os.makedirs(os.path.join(root, "assets"))
    os.makedirs(os.path.join(root, "media"))
    with open(os.path.join(root, SMALL[1:]), "w") as f:
        f.write(js)
    with open(os.path.join(root, LARGE[1:]), "wb") as f:
        f.write(os.urandom(1 << 20))
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write(f"<!doctype html><script src={SMALL}></script>\n")


class Nginx:
    def __init__(self, root):
        self.prefix = tempfile.mkdtemp(prefix="hoist-bench-nginx-static-")
        self.port = free_port()
        conf = os.path.join(self.prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(prefix=self.prefix, port=self.port, root=root, nice=NICE))
        self.proc = subprocess.Popen(
            ["/usr/sbin/nginx", "-p", self.prefix, "-c", conf, "-e", self.prefix + "/error.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, "nginx")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.prefix, ignore_errors=True)


class Harness:
    """The static_site example: one gateway serving the folder."""
    def __init__(self, root, workers):
        if not os.path.exists(HARNESS):
            raise SystemExit(f"{HARNESS} is missing: cargo build --release -p hoist-gateway "
                             "--example static_site")
        self.port = free_port()
        self.proc = subprocess.Popen([HARNESS, root, str(self.port), str(workers), str(NICE)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, "static_site")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Deployed:
    """A real `hoist server` with the folder deployed as a static-only site."""
    def __init__(self, root):
        extra = (f"--gateway-nice={NICE}",) + ((f"--gateway-workers={WORKERS}",) if WORKERS else ()) \
            + (("--no-request-logging",) if LOGGING_OFF else ())
        self.server = Server("static", extra)
        self.port = self.server.gw_port
        self.proc = self.server.proc
        self.repo = git_repo(None, {"hoist.toml": 'runtime = "python"\nstatic = "dist"\n'})
        shutil.copytree(root, os.path.join(self.repo, "dist"))
        run = lambda *a: subprocess.run(["git", "-C", self.repo, *a], check=True,
                                        capture_output=True)
        run("add", "-A")
        run("-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "dist")
        p = subprocess.run([HOIST, "deploy", self.repo, "--name", NAME], env=self.server.env,
                           capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            self.stop()
            raise SystemExit(f"hoist deploy failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        print(p.stdout.strip().splitlines()[-1], flush=True)

    def stop(self):
        self.server.stop()
        shutil.rmtree(self.repo, ignore_errors=True)


def wait_port(port, proc, what):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not start")


def fetch(port, path, headers):
    """(status, headers, body) of one GET with the site's Host."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 headers={"Host": HOST, **dict(h.split(": ", 1) for h in headers)})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.headers, r.read()


def check_same(hoist_port, nginx_port, root):
    """Both serve the same bytes for every case, and Hoist marks its answers static."""
    for label, path, headers in CASES:
        hs, hh, hb = fetch(hoist_port, path, headers)
        ns, nh, nb = fetch(nginx_port, path, headers)
        with open(os.path.join(root, path[1:]), "rb") as f:
            original = f.read()
        for who, status, hdrs, body in (("hoist", hs, hh, hb), ("nginx", ns, nh, nb)):
            if hdrs.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            elif headers:
                raise SystemExit(f"{who} did not send {label} gzipped")
            if status != 200 or body != original:
                raise SystemExit(f"{who} answered {label} with {status}, {len(body)} bytes")
        if hh.get("X-Hoist-Static") != "hit":
            raise SystemExit(f"hoist's answer to {label} is not marked static: {dict(hh)}")


def main():
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit("terminated")))
    ensure_tools()
    mode = os.environ.get("HOIST_STATIC")
    if mode is None:
        help_text = subprocess.run([HOIST, "deploy", "--help"], capture_output=True,
                                   text=True).stdout
        mode = "server" if "--static" in help_text else "harness"
    work = tempfile.mkdtemp(prefix="hoist-bench-static-")
    os.chmod(work, 0o755)  # nginx's workers run as nobody
    root = os.path.join(work, "dist")
    write_site(root)
    subprocess.run(["gzip", "-9", "-k", os.path.join(root, SMALL[1:])], check=True)
    pace = os.path.join(work, "pace.lua")
    with open(pace, "w") as f:
        f.write(f"function delay() return {PACE_MS} end\n")
    paced = {(c, who): [] for c, p, _ in CASES for who in ("hoist", "nginx")
             if PACE_MS and p in PACED}
    nginx = hoist = None
    cores = os.cpu_count() or 1
    runs = {(c, who): [] for c, _, _ in CASES for who in ("hoist", "nginx")}
    cpu = {(c, who): [] for c, _, _ in CASES for who in ("hoist", "nginx")}
    idle = []
    try:
        nginx = Nginx(root)
        workers = int(WORKERS) if WORKERS else max(1, cores // 2)
        hoist = Deployed(root) if mode == "server" else Harness(root, workers)
        check_same(hoist.port, nginx.port, root)
        ports = {"hoist": hoist.port, "nginx": nginx.port}
        pids = {"hoist": hoist.proc.pid, "nginx": nginx.proc.pid}
        print(f"hoist ({mode}) on {hoist.port}, nginx on {nginx.port}; {ROUNDS} rounds of "
              f"wrk -t{THREADS} -c{CONNS} -d{DURATION}s", flush=True)
        for label, path, headers in CASES:
            for who in ("hoist", "nginx"):
                wrk(f"http://127.0.0.1:{ports[who]}{path}", THREADS, CONNS, 2, HOST, headers)
        for r in range(ROUNDS):
            idle.append(wait_quiet(QUIET_WAIT))
            for label, path, headers in CASES:
                for who in ("hoist", "nginx") if r % 2 == 0 else ("nginx", "hoist"):
                    cpu0 = cpu_seconds(pids[who])
                    res = wrk(f"http://127.0.0.1:{ports[who]}{path}", THREADS, CONNS, DURATION,
                              HOST, headers)
                    cpu[(label, who)].append((cpu_seconds(pids[who]) - cpu0) * 1e6 / res[4])
                    runs[(label, who)].append(res)
                    print(f"  round {r + 1} {label:32} {who:5}: {res[0]:9.0f} req/s  "
                          f"p99 {res[2]:7.3f} ms  errors {res[3]}  "
                          f"CPU {cpu[(label, who)][-1]:6.1f} us/req", flush=True)
                for who in ("hoist", "nginx") if r % 2 == 0 else ("nginx", "hoist"):
                    if (label, who) not in paced:
                        continue
                    res = wrk(f"http://127.0.0.1:{ports[who]}{path}", THREADS, CONNS, DURATION,
                              HOST, headers, script=pace)
                    paced[(label, who)].append(res)
                    print(f"  round {r + 1} {label:32} {who:5}: {res[0]:9.0f} req/s  "
                          f"p99 {res[2]:7.3f} ms  errors {res[3]}  (paced {PACE_MS} ms)",
                          flush=True)
    finally:
        if hoist:
            hoist.stop()
        if nginx:
            nginx.stop()
        shutil.rmtree(work, ignore_errors=True)

    print()
    print("machine idle before each round: " + ", ".join(f"{i:.0%}" for i in idle))
    print(f"static files, hoist ({mode}, {WORKERS or 'default'} gateway workers) vs nginx (sendfile, gzip_static, keep-alive), "
          f"wrk -t{THREADS} -c{CONNS} -d{DURATION}s on loopback, {ROUNDS} rounds (medians)")
    rows = []
    for label, _, _ in CASES:
        h, n = runs[(label, "hoist")], runs[(label, "nginx")]
        tput = [a[0] / b[0] for a, b in zip(h, n)]
        p99 = [b[2] / a[2] for a, b in zip(h, n)]
        errors = sum(x[3] for x in h + n)
        rows.append((label, f"hoist {median([x[0] for x in h]):8.0f} req/s p99 "
                            f"{median([x[2] for x in h]):6.3f} ms | nginx "
                            f"{median([x[0] for x in n]):8.0f} req/s p99 "
                            f"{median([x[2] for x in n]):6.3f} ms"))
        rows.append(("  throughput hoist/nginx", f"{median(tput):5.2f} (quartiles "
                                                 f"{pct(tput, 25):.2f}-{pct(tput, 75):.2f})"))
        rows.append(("  p99 nginx/hoist (>= 1: hoist's is as low)",
                     f"{median(p99):5.2f} (quartiles {pct(p99, 25):.2f}-{pct(p99, 75):.2f})"))
        rows.append(("  CPU per request hoist / nginx",
                     f"{median(cpu[(label, 'hoist')]):6.1f} us / "
                     f"{median(cpu[(label, 'nginx')]):.1f} us; errors {errors}"))
        if (label, "hoist") in paced:
            h, n = paced[(label, "hoist")], paced[(label, "nginx")]
            p99 = [b[2] / a[2] for a, b in zip(h, n)]
            rows.append((f"  at equal load ({PACE_MS} ms between a connection's requests)",
                         f"hoist {median([x[0] for x in h]):8.0f} req/s p99 "
                         f"{median([x[2] for x in h]):6.3f} ms | nginx "
                         f"{median([x[0] for x in n]):8.0f} req/s p99 "
                         f"{median([x[2] for x in n]):6.3f} ms; errors "
                         f"{sum(x[3] for x in h + n)}"))
            rows.append(("  p99 at equal load nginx/hoist",
                         f"{median(p99):5.2f} (quartiles {pct(p99, 25):.2f}-{pct(p99, 75):.2f})"))
    table(rows)


if __name__ == "__main__":
    sys.exit(main())
