"""Cron: how precisely runs start, and what idle jobs cost the server.

1. Lag: a warm service (`min_instances = 1`) gets a job on a per-second schedule; the app
   records, for each run, when the request reached it minus the `X-Hoist-Schedule-Time` it
   carries (both on this machine's clock). Median and p99 over RUNS (default 100) runs.
2. Idle cost: SERVICES (default 1,000) services, each with one job (hourly, at minute
   `i % 60` so they are spread over the hour), and none running. The server's CPU time
   (user + system, from /proc) over WINDOW seconds (default 60) of nothing due, as a share
   of one core. The services are made by deploys that fail at the fetch (a source that does
   not exist): the service exists, has no instance, and its job is scheduled like any other;
   the scheduler's cost does not depend on what the service runs.
"""

import json
import os
import sys
import time
import urllib.request

import common
from common import Server, git_repo, median, table

RUNS = int(os.environ.get("RUNS", "100"))
SERVICES = int(os.environ.get("SERVICES", "1000"))
WINDOW = float(os.environ.get("WINDOW", "60"))

APP = '''
import json, os, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LAGS = []

import calendar

def rfc3339_ms(text):
    # 2026-12-02T01:02:03Z: whole seconds, in UTC
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")) * 1000

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1
    def do_GET(self):
        now = time.time() * 1000
        sched = self.headers.get("X-Hoist-Schedule-Time")
        if sched:
            LAGS.append(now - rfc3339_ms(sched))
        body = json.dumps(LAGS).encode() if self.path == "/lags" else b"ok\\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), H).serve_forever()
'''
TOML = 'runtime = "python"\nstart = "python3 app.py"\nmemory = 1024\n'


def post(server, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{server.api_port}{path}",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {server.token}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def lags(server):
    req = urllib.request.Request(f"http://127.0.0.1:{server.gw_port}/lags",
                                 headers={"Host": "precise.localhost"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def cpu_seconds(pid):
    tick = os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / tick


def main():
    repo = git_repo(None, {"app.py": APP, "hoist.toml": TOML})
    server = Server("cron")
    try:
        server.hoist("deploy", repo, "--name", "precise", "--min-instances", "1")
        post(server, "/v1/services/precise/cron",
             {"schedule": "* * * * * *", "path": "/tick", "job": "tick"})
        deadline = time.monotonic() + RUNS * 1.5 + 30
        while time.monotonic() < deadline:
            got = lags(server)
            if len(got) >= RUNS + 3:
                break
            time.sleep(1)
        got = sorted(got[3:RUNS + 3])  # the first few while the connection warms up
        p99 = got[min(len(got) - 1, int(len(got) * 0.99))]
        server.hoist("cron", "rm", "precise", "tick")

        t0 = time.monotonic()
        for i in range(SERVICES):
            name = f"idle{i:04d}"
            post(server, "/v1/deployments", {"name": name, "source": "/nonexistent/repo",
                                              "runtime": "python", "start": "true"})
        # The deploys' fetches fail at once; wait until none is in flight.
        time.sleep(5)
        for i in range(SERVICES):
            post(server, f"/v1/services/idle{i:04d}/cron",
                 {"schedule": f"{i % 60} * * * *", "path": "/tick", "job": "hourly"})
        made = time.monotonic() - t0
        # About SERVICES / 60 jobs are due in each minute of the window (each a request the
        # gateway answers 404, no deployment being live): part of what the jobs cost.
        time.sleep(5)
        c0, w0 = cpu_seconds(server.proc.pid), time.monotonic()
        time.sleep(WINDOW)
        c1, w1 = cpu_seconds(server.proc.pid), time.monotonic()
        share = (c1 - c0) / (w1 - w0) * 100
        runs = server.metrics("hoist_cron_runs_total")
    finally:
        server.stop()
    print(f"cron: lag over {len(got)} per-second runs of a warm service; "
          f"{SERVICES} jobs on {SERVICES} idle services over {WINDOW:.0f} s")
    table([
        ("lag, scheduled time to the app, median", f"{median(got):7.2f} ms   (target < 5 ms)"),
        ("lag, p90", f"{got[int(len(got) * 0.9)]:7.2f} ms"),
        ("lag, p99", f"{p99:7.2f} ms   (target < 50 ms)"),
        ("lag, max", f"{got[-1]:7.2f} ms"),
        (f"server CPU, {SERVICES} idle jobs", f"{share:7.3f} % of a core   (target < 1 %)"),
        ("services and jobs made in", f"{made:7.1f} s"),
        ("cron runs counted in /metrics", f"{sum(runs):7.0f}"),
    ])


if __name__ == "__main__":
    sys.exit(main())
