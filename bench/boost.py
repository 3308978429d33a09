"""The startup CPU boost (issue 15): small services from zero, boosted and not, in one run.

(a) The minimal stdlib Python app (common.MINIMAL_APP) at 256 MB, which buys 14 % of a core:
    `hoist stop`, then one request through the gateway on a new connection, timed until its
    response, against the same app's bare boot measured in the same run and interleaved with
    it: the same command in the same root filesystem (runtime + app, overlay-mounted, chroot),
    no namespaces or cgroups, timed from spawn until it answers, polled on Hoist's probe
    schedule (1 ms doubling, capped at 2 ms). Target: boosted, within 30 ms of the bare boot.
(b) examples/flask-hello (gunicorn + Flask) at 256 MB against the same at 1769 MB (one whole
    core, which the boost does not change), from zero: the instance's start to ready as the
    server records it (ready_at - created_at: from the app's process start to its first HTTP
    answer), and the first response through the gateway. Target: 256 MB boosted within 1.5x.

Both with the boost on (the default) and off (`--startup-boost off`). Each round measures every
case once, in turn, so the machine's load moves them alike; medians of RUNS rounds.

    cd bench && RUNS=7 python3 boost.py
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

RUNS = int(os.environ.get("RUNS", "7"))
FLASK = os.path.join(common.ROOT, "examples", "flask-hello")
RUNTIME = "python@3.13"


def wait_http(port, deadline_s=60):
    """Hoist's readiness probe schedule: 1 ms doubling, capped at 2 ms (50 ms after 2 s)."""
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


class Bare:
    """The minimal app's root filesystem, mounted once as Hoist's shared root is."""

    def __init__(self, repo, rootfs):
        self.lower = tempfile.mkdtemp(prefix="hoist-bench-app-")
        os.makedirs(os.path.join(self.lower, "app"))
        subprocess.run(["cp", "-a", repo + "/.", os.path.join(self.lower, "app")], check=True)
        self.merged = tempfile.mkdtemp(prefix="hoist-bench-bare-")
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={self.lower}:{rootfs}", self.merged], check=True)
        self.port = 19500

    def boot_ms(self):
        self.port += 1
        t0 = time.monotonic()
        p = subprocess.Popen(["/usr/sbin/chroot", self.merged, "bash", "-c",
                              "cd /app && exec python3 app.py"],
                             env={"PORT": str(self.port), "PATH": "/usr/local/bin:/usr/bin:/bin"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_http(self.port)
            return (time.monotonic() - t0) * 1000
        finally:
            p.kill()
            p.wait()

    def close(self):
        subprocess.run(["umount", self.merged], check=False)


def wait_until(cond, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def newest_instance(server, name):
    insts = server.api(f"/v1/services/{name}")["instances"]
    return max(insts, key=lambda i: i["created_at"]) if insts else None


def cold_start(server, name, expect):
    """From zero: (first response through the gateway in ms, the server's start to ready in ms,
    whether the instance was boosted)."""
    server.hoist("stop", name)
    if not wait_until(lambda: not server.api(f"/v1/services/{name}")["running"]):
        raise SystemExit(f"{name}: instances did not stop")
    before = newest_instance(server, name)
    time.sleep(0.5)  # the warm pool refills after each start
    conn = http.client.HTTPConnection("127.0.0.1", server.gw_port, timeout=60)
    t0 = time.perf_counter()
    conn.request("GET", "/", headers={"Host": f"{name}.localhost"})
    r = conn.getresponse()
    body = r.read()
    first = (time.perf_counter() - t0) * 1000
    conn.close()
    if r.status != 200 or expect not in body:
        raise SystemExit(f"{name}: unexpected answer {r.status} {body[:200]!r}")
    inst = None
    for _ in range(100):
        inst = newest_instance(server, name)
        if inst and inst["ready_at"] and (not before or inst["id"] != before["id"]):
            break
        time.sleep(0.02)
    running = server.api(f"/v1/services/{name}")["running"]
    boosted = any(i["boosted"] for i in running)
    # Stopped at once: a boost still settling would hold the budget for the next case.
    server.hoist("stop", name)
    return first, inst["ready_at"] - inst["created_at"], boosted


def main():
    # The version named, so that the bare boot below uses the very root filesystem the
    # deployment runs on.
    mini = git_repo(None, {"app.py": common.MINIMAL_APP,
                           "hoist.toml": f'runtime = "{RUNTIME}"\nstart = "python3 app.py"\n'})
    flask = git_repo(FLASK)
    server = Server("boost")
    bare = None
    cases = [  # name, repo, memory, boost, expected body
        ("mini-on", mini, "256", "on", b"ok"),
        ("mini-off", mini, "256", "off", b"ok"),
        ("flask-on", flask, "256", "on", b"Hello"),
        ("flask-off", flask, "256", "off", b"Hello"),
        ("flask-1769", flask, "1769", "on", b"Hello"),
    ]
    res = {c[0]: {"first": [], "ready": [], "boosted": []} for c in cases}
    bare_ms = []
    load = []
    try:
        for name, repo, memory, boost, _ in cases:
            server.hoist("deploy", repo, "--name", name, "--memory", memory,
                         "--startup-boost", boost)
        # Each deploy's first instance keeps its boost for the settle time: at zero, none holds
        # the budget when the rounds begin.
        for name, *_ in cases:
            server.hoist("stop", name)
        rootfs = os.path.join(server.env["HOIST_RUNTIME_CACHE"], RUNTIME, "rootfs")
        bare = Bare(mini, rootfs)
        for _ in range(RUNS):
            load.append(os.getloadavg()[0])
            bare_ms.append(bare.boot_ms())
            for name, _, _, _, expect in cases:
                first, ready, boosted = cold_start(server, name, expect)
                res[name]["first"].append(first)
                res[name]["ready"].append(ready)
                res[name]["boosted"].append(boosted)
    finally:
        if bare:
            bare.close()
        server.stop()

    m = {n: (median(r["first"]), median(r["ready"])) for n, r in res.items()}
    b = median(bare_ms)
    print(f"startup CPU boost, {RUNS} rounds (medians); 1-minute load average during the run: "
          f"{min(load):.2f} to {max(load):.2f}")
    table([
        ("(a) bare boot of the minimal app (chroot, same rootfs, same probe)", f"{b:8.1f} ms"),
        ("    256 MB from zero, first response, boost on", f"{m['mini-on'][0]:8.1f} ms"
         f"   over bare: {m['mini-on'][0] - b:+7.1f} ms (target <= 30 ms)"),
        ("    256 MB from zero, first response, boost off", f"{m['mini-off'][0]:8.1f} ms"
         f"   over bare: {m['mini-off'][0] - b:+7.1f} ms"),
        ("    server's start to ready, on / off", f"{m['mini-on'][1]:8.1f} / {m['mini-off'][1]:.1f} ms"),
        ("(b) flask-hello 1769 MB, start to ready (first response)",
         f"{m['flask-1769'][1]:8.1f} ms ({m['flask-1769'][0]:.1f} ms)"),
        ("    256 MB boost on, start to ready (first response)",
         f"{m['flask-on'][1]:8.1f} ms ({m['flask-on'][0]:.1f} ms)"
         f"   {m['flask-on'][1] / m['flask-1769'][1]:.2f}x of 1769 MB (target <= 1.5x)"),
        ("    256 MB boost off, start to ready (first response)",
         f"{m['flask-off'][1]:8.1f} ms ({m['flask-off'][0]:.1f} ms)"
         f"   {m['flask-off'][1] / m['flask-1769'][1]:.2f}x of 1769 MB"),
        ("boosted starts seen by the API (on cases)",
         f"{sum(sum(res[n]['boosted']) for n in ('mini-on', 'flask-on'))} of {2 * RUNS}"),
    ])
    if os.environ.get("VERBOSE"):
        print("bare", [round(x) for x in bare_ms])
        for n, r in res.items():
            print(n, [round(x) for x in r["ready"]], [round(x) for x in r["first"]], r["boosted"])


if __name__ == "__main__":
    sys.exit(main())
