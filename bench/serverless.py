"""Scale from zero and thaw, against the app's own boot and a warm request, in one run.

The app is a stdlib Python HTTP server (2048 MB, i.e. 2 CPUs, the machine's whole share, as the
bare process has).

* Cold start: the service is taken to zero (`hoist stop`), then one request is sent through the
  gateway on a new connection and timed until its response arrives. The activator holds it,
  starts an instance (a sandbox from the warm pool), polls it until it answers, and forwards.
  The app's own boot is measured bare in the same run: the same command in the same root
  filesystem (runtime + app, overlay-mounted, chroot), no namespaces or cgroups, timed from
  spawn until it answers, polled on the same schedule as Hoist's probe (1 ms doubling, capped
  at 2 ms). Overhead = cold start - bare boot.
* Thaw: with `idle_freeze = 300ms`, a request on a kept-alive client connection after the
  instance was frozen (checked through the API) against the same request while it is warm.
"""

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time

import common
from common import Server, git_repo, median, table

RUNS = int(os.environ.get("RUNS", "15"))
APP = common.MINIMAL_APP
TOML = ('runtime = "python"\nstart = "python3 app.py"\nmemory = 2048\n'
        'idle_freeze = "300ms"\nidle_stop = "15m"\n')
HOST = "mini.localhost"


def wait_http(port, deadline_s=30):
    """The same schedule as Hoist's readiness probe: 1 ms doubling, capped at 2 ms."""
    delay = 0.001
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(5) == b"HTTP/":
                    return
        except OSError:
            pass
        time.sleep(delay)
        delay = min(delay * 2, 0.002 if time.monotonic() - start < 2 else 0.05)
    raise SystemExit("bare app did not answer")


def bare_boot(repo, rootfs):
    lower_app = tempfile.mkdtemp(prefix="hoist-bench-app-")
    os.makedirs(os.path.join(lower_app, "app"))
    subprocess.run(["cp", "-a", repo + "/.", os.path.join(lower_app, "app")], check=True)
    merged = tempfile.mkdtemp(prefix="hoist-bench-bare-")
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={lower_app}:{rootfs}", merged], check=True)
    times = []
    try:
        for i in range(RUNS):
            port = 19000 + i
            t0 = time.monotonic()
            p = subprocess.Popen(["/usr/sbin/chroot", merged, "bash", "-c", "cd /app && exec python3 app.py"],
                                 env={"PORT": str(port), "PATH": "/usr/local/bin:/usr/bin:/bin"},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_http(port)
            times.append((time.monotonic() - t0) * 1000)
            p.kill()
            p.wait()
    finally:
        subprocess.run(["umount", merged], check=False)
    return times


def running(server):
    return server.api("/v1/services/mini")["running"]


def wait_until(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def timed_get(conn):
    t0 = time.perf_counter()
    conn.request("GET", "/", headers={"Host": HOST})
    r = conn.getresponse()
    body = r.read()
    dt = (time.perf_counter() - t0) * 1000
    if r.status != 200 or body != b"ok\n":
        raise SystemExit(f"unexpected answer {r.status} {body[:200]!r}")
    return dt


def main():
    repo = git_repo(None, {"app.py": APP, "hoist.toml": TOML})
    server = Server("serverless")
    try:
        server.hoist("deploy", repo, "--name", "mini")  # builds the runtime if needed
        cold = []
        for _ in range(RUNS):
            server.hoist("stop", "mini")
            if not wait_until(lambda: not running(server)):
                raise SystemExit("instances did not stop")
            time.sleep(0.5)  # the warm pool refills after each start
            conn = http.client.HTTPConnection("127.0.0.1", server.gw_port, timeout=30)
            cold.append(timed_get(conn))
            conn.close()

        conn = http.client.HTTPConnection("127.0.0.1", server.gw_port, timeout=30)
        warm, thaw = [], []
        for _ in range(RUNS):
            for _ in range(20):
                warm.append(timed_get(conn))
            if not wait_until(lambda: any(i["state"] == "frozen" for i in running(server)), 5):
                raise SystemExit("the instance did not freeze")
            thaw.append(timed_get(conn))
        conn.close()
        rootfs = os.path.join(server.env["HOIST_RUNTIME_CACHE"], "python", "rootfs")
        bare = bare_boot(repo, rootfs)
    finally:
        server.stop()
    b, c, w, t = median(bare), median(cold), median(warm), median(thaw)
    print(f"scale from zero and thaw, minimal Python HTTP app, {RUNS} runs each (medians)")
    table([
        ("bare boot (chroot, same rootfs, same probe schedule)", f"{b:7.2f} ms"),
        ("hoist: request to a service at zero, until its response", f"{c:7.2f} ms"),
        ("cold start overhead (hoist - bare)", f"{c - b:7.2f} ms   (target < 15 ms)"),
        ("warm request through the gateway (keep-alive)", f"{w:7.3f} ms"),
        ("request to a frozen instance (thaw + request)", f"{t:7.3f} ms"),
        ("thaw overhead (frozen - warm)", f"{t - w:7.3f} ms   (target < 2 ms)"),
    ])


if __name__ == "__main__":
    sys.exit(main())
