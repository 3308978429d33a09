"""Many idle services: the server's memory and the cost of routing, against one service.

N services (default 1000) are deployed from one small Python app with `idle_freeze = 100ms`
and `idle_stop = 100ms`, so each one's first instance stops right after its deploy and none
runs afterwards (serverless). One more service, `probe`, is persistent (`min_instances = 1`)
and answers the routing measurement. In one run:

* the server's resident memory (VmRSS) with only `probe`, and with the N idle services;
* a warm request to `probe` through the gateway (keep-alive, sequential; median of 3,000)
  with only `probe`, and with the N idle services;
* a request for an unknown host (answered by the gateway itself, 404), both times.
"""

import concurrent.futures
import http.client
import os
import sys
import time

import common
from common import Server, git_repo, median, table

N = int(os.environ.get("SERVICES", "1000"))
REQUESTS = 3000
APP = common.MINIMAL_APP
TOML = ('runtime = "python"\nstart = "python3 app.py"\nmemory = 1024\n'
        'idle_freeze = "100ms"\nidle_stop = "100ms"\n')


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def latencies(port, host, expect):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    for i in range(REQUESTS + 200):
        t0 = time.perf_counter()
        conn.request("GET", "/", headers={"Host": host})
        r = conn.getresponse()
        r.read()
        if r.status != expect:
            raise SystemExit(f"{host}: expected {expect}, got {r.status}")
        if i >= 200:
            out.append((time.perf_counter() - t0) * 1000)
    conn.close()
    return median(out)


def measure(server):
    return (rss_mb(server.proc.pid), latencies(server.gw_port, "probe.localhost", 200),
            latencies(server.gw_port, "nothing-here.localhost", 404))


def main():
    repo = git_repo(None, {"app.py": APP, "hoist.toml": TOML})
    server = Server("services", extra=["--max-builds", "4"])
    try:
        server.hoist("deploy", repo, "--name", "probe", "--min-instances", "1",
                     "--idle-stop", "15m")
        one = measure(server)
        t0 = time.monotonic()
        names = [f"s{i:04d}" for i in range(N)]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for done, _ in enumerate(pool.map(lambda n: server.hoist("deploy", repo, "--name", n), names)):
                if done % 100 == 99:
                    print(f"  {done + 1} services deployed ({time.monotonic() - t0:.0f} s)", flush=True)
        # Every idle instance stops within idle_stop plus a scaler tick or two.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            running = sum(1 for d in os.listdir(os.path.join(server.data, "run", "bundles")))
            if running <= 1 + 32 + 2:  # probe, the warm pool, slack
                break
            time.sleep(1)
        time.sleep(2)
        many = measure(server)
    finally:
        server.stop()
    print(f"{N} idle services against one, {REQUESTS} requests each (medians)")
    table([
        ("server RSS, 1 service", f"{one[0]:7.1f} MB"),
        (f"server RSS, {N} idle services + 1", f"{many[0]:7.1f} MB   (target < 100 MB)"),
        ("warm request, 1 service", f"{one[1]:7.3f} ms"),
        (f"warm request, {N} + 1 services", f"{many[1]:7.3f} ms"),
        ("unknown host (404 from the gateway), 1 service", f"{one[2]:7.3f} ms"),
        (f"unknown host, {N} + 1 services", f"{many[2]:7.3f} ms"),
    ])


if __name__ == "__main__":
    sys.exit(main())
