"""Hoist's gateway as a reverse proxy: throughput and latency against nginx, and the latency a
warm request pays for going through it.

The upstream is one Hoist instance of a Go net/http hello-world (2048 MB, i.e. 2 CPUs, the
machine's whole share). Both proxies sit in front of that same instance:

- Hoist's gateway routes by Host header (`fast.localhost`) and reaches the app on the
  instance's own loopback, with a socket made inside its network namespace;
- nginx (Debian's, `worker_processes 2`, one per core; `keepalive 64` upstream connections,
  HTTP/1.1, `Connection ""`; the same Host and X-Forwarded-* headers the gateway sets; its
  access log as REQUEST_LOGGING says, below; `worker_priority` the same as the gateway
  threads' nice value, GATEWAY_NICE below) runs from a temporary prefix and reaches the app at the instance's guest address
  through the veth pair (read from the instance's /etc/hosts in its bundle directory). Hoist
  closes that address to the host (apps are reached only through the gateway), so the script
  opens the app's port to the host while it runs (an iptables ACCEPT in OUTPUT, removed at the
  end) for nginx and the direct baseline.

1. Throughput: `wrk -t2 -c64 -d10s --latency` on loopback against each proxy, interleaved
   hoist, nginx, direct, then nginx, hoist, direct... (which proxy goes first alternates) for
   ROUNDS rounds after a 2 s warm-up of each proxy; medians of requests/s, p50 and p99, and
   the median of each round's hoist/nginx ratio (the two runs of a round are close in time,
   so their ratio is less exposed to the machine's drift). "direct" is wrk straight at the app's guest
   address, no proxy: the ceiling either proxy could reach. wrk, the proxy and the app share
   the machine's 2 cores, the same for both proxies, so each proxy's own CPU time per request
   (the `hoist server` process's threads, not the app it has as a child; nginx's master and
   workers; from /proc) is reported too: it is what decides throughput here, and it is less
   sensitive than requests/s to other load on the machine.
2. Warm request overhead: one keep-alive connection (Python http.client), WARMUP requests then
   REQUESTS timed ones, sequential, through the gateway and straight to the app's guest
   address:port, alternated per round; the median of each and their difference. `wrk -t1 -c1`
   for 5 s per target gives the same comparison from a C client as a cross-check.

A request is sent through both paths right before each measurement, and the service is
deployed with `--min-instances 1` (and `--max-instances 1`, so both proxies reach the one
instance) when `hoist deploy` has those flags, so the instance is never frozen or stopped for
idleness in between. Anything else running on the machine skews all of this, so each round
waits (up to QUIET_WAIT s) for a quiet second and the idle share seen then is printed with the
results.
"""

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from common import HOIST, Server, free_port, git_repo, median, proc_table, table

ROUNDS = int(os.environ.get("ROUNDS", "3"))
DURATION = int(os.environ.get("DURATION", "10"))  # seconds per wrk run
CONNS, THREADS = 64, 2
# Before each round, wait at most this many seconds for a second with the machine >= 85 % idle.
QUIET_WAIT = int(os.environ.get("QUIET_WAIT", "120"))
REQUESTS, WARMUP = int(os.environ.get("REQUESTS", "2000")), 200
# GATEWAY_WORKERS=N runs the server with --gateway-workers N instead of its default.
WORKERS = os.environ.get("GATEWAY_WORKERS")
# Who logs each request, as each proxy ships: Hoist writes its access log and request metrics
# by default, and Debian's nginx.conf has `access_log /var/log/nginx/access.log` (the combined
# format, one write per request). REQUEST_LOGGING=both (the default) runs both that way;
# =off runs Hoist with --no-request-logging and nginx with `access_log off`; =hoist-only
# logs in Hoist alone, the comparison least favourable to Hoist.
LOGGING = os.environ.get("REQUEST_LOGGING", "both")
if LOGGING not in ("both", "off", "hoist-only"):
    raise SystemExit(f"REQUEST_LOGGING={LOGGING}: expected both, off or hoist-only")
LOGGING_OFF = LOGGING == "off"
NGINX_LOGS = LOGGING == "both"
# Both proxies run at this scheduling priority: Hoist's gateway threads with --gateway-nice
# (its default is -5) and nginx's workers with `worker_priority`, so neither is ahead of the
# other in the CPU queue. GATEWAY_NICE=0 runs both at the default priority of a process.
NICE = int(os.environ.get("GATEWAY_NICE", "-5"))
NAME, APP_PORT = "fast", 8080
HOST = f"{NAME}.localhost"

MAIN_GO = '''package main

import (
	"net/http"
	"os"
)

func main() {
	body := []byte("hello\\n")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	if err := http.ListenAndServe("0.0.0.0:"+port, nil); err != nil {
		panic(err)
	}
}
'''
GO_MOD = "module hello\n\ngo 1.19\n"
TOML = f'''runtime = "go"
build = "go build -o server ."
start = "./server"
port = {APP_PORT}
memory = 2048
'''

NGINX_CONF = '''worker_processes 2;
worker_priority {nice};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {access_log};
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream app {{
        server {upstream};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
        }}
    }}
}}
'''


def ensure_tools():
    missing = [pkg for pkg, exe in (("nginx", "/usr/sbin/nginx"), ("wrk", "wrk"))
               if not shutil.which(exe)]
    if missing:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def get(host, port, host_header=None, path="/"):
    """One request on a fresh connection; returns (status, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host_header} if host_header else {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def deploy(server, repo):
    """`hoist deploy`, with --min-instances 1 and --max-instances 1 when this build has them
    (one warm instance, so both proxies always reach the same one)."""
    help_text = server.hoist("deploy", "--help")
    extra = [flag for flag in ("--min-instances", "--max-instances") if flag in help_text]
    args = [HOIST, "deploy", repo, "--name", NAME]
    for flag in extra:
        args += [flag, "1"]
    p = subprocess.run(args, env=server.env, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise SystemExit(f"hoist deploy failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout.strip().splitlines()[-1], extra


def open_to_host(guest, port):
    """Lets host processes connect to guest:port past Hoist's inbound filter; returns the rule
    to delete afterwards."""
    rule = ["OUTPUT", "-d", guest, "-p", "tcp", "--dport", str(port), "-j", "ACCEPT"]
    subprocess.run(["iptables", "-I"] + rule[:1] + ["1"] + rule[1:], check=True)
    return rule


def guest_address(server):
    """The ready instance's guest IP, from the /etc/hosts Hoist wrote into its bundle dir."""
    status = server.hoist("status", NAME)
    rows = status.split("INSTANCE", 1)[1].splitlines()[1:]
    ready = [r.split()[0] for r in rows if len(r.split()) >= 3 and r.split()[2] == "ready"]
    if len(ready) != 1:
        raise SystemExit(f"expected one ready instance, got:\n{status}")
    hosts = os.path.join(server.data, "run", "bundles", ready[0], "hosts")
    with open(hosts) as f:
        for line in f:
            fields = line.split()
            if len(fields) == 2 and fields[1] == NAME:
                return fields[0], ready[0]
    raise SystemExit(f"no line for {NAME} in {hosts}")


class Nginx:
    def __init__(self, upstream):
        self.prefix = tempfile.mkdtemp(prefix="hoist-bench-nginx-")
        self.port = free_port()
        conf = os.path.join(self.prefix, "nginx.conf")
        with open(conf, "w") as f:
            access_log = self.prefix + "/access.log" if NGINX_LOGS else "off"
            f.write(NGINX_CONF.format(prefix=self.prefix, upstream=upstream, port=self.port,
                                      access_log=access_log, nice=NICE))
        self.proc = subprocess.Popen(
            ["/usr/sbin/nginx", "-p", self.prefix, "-c", conf, "-e", self.prefix + "/error.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise SystemExit("nginx did not start; see " + self.prefix + "/error.log")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: workers finish, master exits
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.prefix, ignore_errors=True)


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def wrk(url, threads, conns, seconds, host=HOST, headers=(), script=None):
    """Runs wrk against url (with the service's Host header unless host is None, any other
    `headers`, and the Lua `script` if given); returns (requests/s, p50 ms, p99 ms, socket
    errors + non-2xx responses, requests)."""
    header = ["-H", f"Host: {host}"] if host else []
    for h in headers:
        header += ["-H", h]
    if script:
        header += ["-s", script]
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", *header, url],
        check=True, capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    count = int(re.search(r"(\d+) requests in", out).group(1))
    pcts = {p: float(v) * UNITS[u]
            for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)}
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors += int(non2xx.group(1)) if non2xx else 0
    return rps, pcts["50"], pcts["99"], errors, count


def cpu_seconds(root_pid):
    """User + system CPU time of a process (all its threads) and of its children that run the
    same program: nginx's workers, but not the app, which Hoist's server has as a child."""
    procs = proc_table()
    comm = procs[root_pid][0]
    return sum(cpu for pid, (c, ppid, cpu) in procs.items()
               if pid == root_pid or (ppid == root_pid and c == comm))


def sequential(host, port, host_header=None):
    """WARMUP then REQUESTS sequential GETs on one keep-alive connection; latencies in ms."""
    conn = http.client.HTTPConnection(host, port, timeout=5)
    headers = {"Host": host_header} if host_header else {}
    times = []
    deadline = time.monotonic() + 120
    try:
        for i in range(WARMUP + REQUESTS):
            t0 = time.perf_counter()
            conn.request("GET", "/", headers=headers)
            r = conn.getresponse()
            r.read()
            dt = (time.perf_counter() - t0) * 1000
            if r.status != 200:
                raise SystemExit(f"{host}:{port} answered {r.status}")
            if i >= WARMUP:
                times.append(dt)
            if time.monotonic() > deadline:
                raise SystemExit(f"sequential requests to {host}:{port} took over 120 s")
    finally:
        conn.close()
    return times


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))] if xs else float("nan")


def idle_share(seconds=1.0):
    """The share of CPU time the machine spent idle over `seconds`: other work (a compile, a
    test suite) skews every figure here, so the result says how quiet the machine was."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)  # idle + iowait, total
    i0, t0 = sample()
    time.sleep(seconds)
    i1, t1 = sample()
    return (i1 - i0) / max(1, t1 - t0)


def wait_quiet(max_s):
    """Waits, at most max_s seconds, for a second in which the machine is >= 85 % idle;
    returns the last idle share seen."""
    deadline = time.monotonic() + max_s
    idle = idle_share()
    while idle < 0.85 and time.monotonic() < deadline:
        idle = idle_share()
    return idle


def on_sigterm(*_):
    raise SystemExit("terminated")


def main():
    signal.signal(signal.SIGTERM, on_sigterm)
    ensure_tools()
    repo = git_repo(None, {"main.go": MAIN_GO, "go.mod": GO_MOD, "hoist.toml": TOML})
    server = nginx = opened = None
    runs = {"hoist": [], "nginx": [], "direct": []}
    cpu_us = {"hoist": [], "nginx": []}  # the proxy's own CPU time per request
    seq_gw, seq_direct, c1 = [], [], {}
    try:
        extra = (("--gateway-workers", WORKERS) if WORKERS else ()) + \
            (("--no-request-logging",) if LOGGING_OFF else ())
        if "--gateway-nice" in subprocess.run([HOIST, "server", "--help"], capture_output=True,
                                              text=True).stdout:
            extra += (f"--gateway-nice={NICE}",)
        elif NICE:
            raise SystemExit(f"{HOIST} has no --gateway-nice; run with GATEWAY_NICE=0")
        server = Server("proxy", extra)
        url, flags = deploy(server, repo)  # builds the go runtime the first time (~1 min)
        guest, instance = guest_address(server)
        opened = open_to_host(guest, APP_PORT)
        status, body = get(guest, APP_PORT)
        if status != 200:
            raise SystemExit(f"the host cannot reach the app at {guest}:{APP_PORT}: {status}")
        nginx = Nginx(f"{guest}:{APP_PORT}")
        targets = {"hoist": server.gw_port, "nginx": nginx.port}
        urls = {name: f"http://127.0.0.1:{port}/" for name, port in targets.items()}
        urls["direct"] = f"http://{guest}:{APP_PORT}/"
        proxy_pid = {"hoist": server.proc.pid, "nginx": nginx.proc.pid}

        def touch():
            """A request through each path, so the instance counts as busy right now."""
            for port in targets.values():
                s, b = get("127.0.0.1", port, HOST)
                if s != 200 or b != body:
                    raise SystemExit(f"port {port} answered {s} {b[:200]!r}")

        print(f"deployed {url} (instance {instance} at {guest}:{APP_PORT}, "
              f"flags: {' '.join(f + ' 1' for f in flags) or 'none'}); nginx on 127.0.0.1:{nginx.port}", flush=True)

        idle = [wait_quiet(QUIET_WAIT)]
        touch()
        for name in ("hoist", "nginx"):
            wrk(urls[name], THREADS, CONNS, 2)  # warm-up: connection pools, page cache, CPU governor
        for r in range(ROUNDS):
            if r:
                idle.append(wait_quiet(QUIET_WAIT))
            # Which proxy goes first alternates, so drift over a round favours neither.
            for name in ("hoist", "nginx", "direct") if r % 2 == 0 else ("nginx", "hoist", "direct"):
                touch()
                pid = proxy_pid.get(name)
                cpu0 = cpu_seconds(pid) if pid else 0.0
                res = wrk(urls[name], THREADS, CONNS, DURATION, HOST if name != "direct" else None)
                if pid:
                    cpu_us[name].append((cpu_seconds(pid) - cpu0) * 1e6 / res[4])
                runs[name].append(res)
                cpu = f"  proxy CPU {cpu_us[name][-1]:5.1f} us/req" if pid else ""
                print(f"  round {r + 1} {name:6}: {res[0]:9.0f} req/s  p50 {res[1]:.3f} ms  "
                      f"p99 {res[2]:.3f} ms  errors {res[3]}{cpu}", flush=True)

        idle.append(wait_quiet(QUIET_WAIT))
        for r in range(ROUNDS):
            touch()
            seq_gw += sequential("127.0.0.1", server.gw_port, HOST)
            touch()
            seq_direct += sequential(guest, APP_PORT)
        for name in ("hoist", "nginx", "direct"):
            touch()
            c1[name] = wrk(urls[name], 1, 1, 5, HOST if name != "direct" else None)
        idle.append(idle_share())
    finally:
        if nginx:
            nginx.stop()
        if opened:
            subprocess.run(["iptables", "-D"] + opened, check=False)
        if server:
            server.stop()
        shutil.rmtree(repo, ignore_errors=True)

    def row(name):
        rps, p50, p99 = (median([x[i] for x in runs[name]]) for i in range(3))
        return rps, f"{rps:9.0f} req/s   p50 {p50:6.3f} ms   p99 {p99:6.3f} ms"
    (h_rps, h_row), (n_rps, n_row), (_, d_row) = row("hoist"), row("nginx"), row("direct")
    ratios = [h[0] / n[0] for h, n in zip(runs["hoist"], runs["nginx"])]
    gw, direct = median(seq_gw), median(seq_direct)
    errors = sum(x[3] for xs in runs.values() for x in xs)
    print()
    print("machine idle before each round, the sequential part and after: "
          + ", ".join(f"{i:.0%}" for i in idle) + " (anything else running skews these figures)")
    print(f"reverse proxy, Go hello-world upstream (2 CPUs), wrk -t{THREADS} -c{CONNS} "
          f"-d{DURATION}s on loopback, {ROUNDS} rounds (medians)")
    table([
        ("hoist gateway", h_row),
        ("nginx (2 workers, keepalive 64)", n_row),
        ("request logging", {"both": "both proxies (each its default access log)",
                             "off": "neither (Hoist --no-request-logging, nginx access_log off)",
                             "hoist-only": "Hoist only (nginx access_log off)"}[LOGGING]),
        ("scheduling priority of both proxies", f"nice {NICE} (--gateway-nice, worker_priority)"),
        ("throughput hoist / nginx, median of the rounds",
         f"{median(ratios):9.2f}   (quartiles {pct(ratios, 25):.2f}-{pct(ratios, 75):.2f}; "
         f"hoist ahead in {sum(r > 1 for r in ratios)} of {len(ratios)} rounds)"),
        ("throughput hoist / nginx, of the medians", f"{h_rps / n_rps:9.2f}"),
        ("proxy CPU per request, hoist / nginx", f"{median(cpu_us['hoist']):9.1f} us / "
                                                 f"{median(cpu_us['nginx']):.1f} us"),
        ("no proxy: wrk straight to the app", d_row),
        ("wrk socket errors + non-2xx", f"{errors:9d}"),
    ])
    print()
    print(f"warm request, one keep-alive connection, {len(seq_gw)} sequential requests per path "
          f"({ROUNDS} x {REQUESTS} after {WARMUP} warm-up each)")
    table([
        ("through the gateway, median", f"{gw:6.3f} ms   (p99 {pct(seq_gw, 99):.3f} ms)"),
        ("straight to the app, median", f"{direct:6.3f} ms   (p99 {pct(seq_direct, 99):.3f} ms)"),
        ("gateway overhead (gateway - direct)", f"{gw - direct:6.3f} ms   (target < 0.2 ms)"),
        ("cross-check wrk -t1 -c1 -d5s, p50", f"gateway {c1['hoist'][1]:.3f} ms, nginx {c1['nginx'][1]:.3f} ms, "
                                              f"direct {c1['direct'][1]:.3f} ms"),
    ])


if __name__ == "__main__":
    sys.exit(main())
