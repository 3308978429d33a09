"""Instance start to ready for a minimal app: Hoist's time against the app's own boot.

The app is a stdlib Python HTTP server. Its own boot is measured bare, in the same run: the
same command in the same root filesystem (runtime + app, overlay-mounted, chroot), no
namespaces, no cgroups, polled for /kaithhealth on the same schedule as Hoist's probe. Hoist's time is
what the platform logs for each instance: from "create a sandbox" to "answered HTTP", with
its parts. The service gets 2048 MB, i.e. 2 CPUs, the machine's whole share, as bare has.
"""

import os
import re
import socket
import subprocess
import sys
import tempfile
import time

from common import GW_PORT, Server, git_repo, median, table

RUNS = int(os.environ.get("RUNS", "15"))
APP = '''
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\\n")

HTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), H).serve_forever()
'''
TOML = 'runtime = "python"\nstart = "python3 app.py"\nmemory = 2048\n'


def wait_http(port, deadline_s=30):
    """The same schedule as Hoist's readiness probe: 1 ms doubling, capped at 2 ms."""
    delay = 0.001
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /kaithhealth HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(5) == b"HTTP/":
                    return
        except OSError:
            pass
        time.sleep(delay)
        delay = min(delay * 2, 0.002 if time.monotonic() - start < 2 else 0.05)
    raise SystemExit("bare app did not answer")


def bare_boot(repo, rootfs, fresh_mount):
    """The app's own boot. With `fresh_mount`, each run gets a new overlay mount, as each Hoist
    instance does (cold dentry and inode caches for that superblock)."""
    lower_app = tempfile.mkdtemp(prefix="hoist-bench-app-")
    os.makedirs(os.path.join(lower_app, "app"))
    subprocess.run(["cp", "-a", repo + "/.", os.path.join(lower_app, "app")], check=True)
    merged = None
    times = []
    try:
        for i in range(RUNS):
            if merged is None or fresh_mount:
                if merged:
                    subprocess.run(["umount", merged], check=False)
                merged = tempfile.mkdtemp(prefix="hoist-bench-bare-")
                subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                                f"lowerdir={lower_app}:{rootfs}", merged], check=True)
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
        if merged:
            subprocess.run(["umount", merged], check=False)
    return times


def main():
    repo = git_repo(None, {"app.py": APP, "hoist.toml": TOML})
    server = Server("startup")
    try:
        server.hoist("deploy", repo, "--name", "mini")  # builds the runtime if needed
        for _ in range(RUNS - 1):
            server.hoist("deploy", repo, "--name", "mini")
        pattern = re.compile(r"ready in ([\d.]+) ms \(network ([\d.]+) ms, bundle ([\d.]+) ms, "
                             r"crun spawn ([\d.]+) ms, boot and readiness ([\d.]+) ms\)")
        samples = [tuple(map(float, m.groups())) for line in server.logs("mini")
                   if (m := pattern.search(line))]
        rootfs = os.path.join(server.env["HOIST_RUNTIME_CACHE"], "python", "rootfs")
        bare = bare_boot(repo, rootfs, fresh_mount=False)
        bare_fresh = bare_boot(repo, rootfs, fresh_mount=True)
    finally:
        server.stop()
    cols = list(zip(*samples))
    total, net, bundle, crun, ready = (median(c) for c in cols)
    b = median(bare)
    print(f"instance start to ready, minimal Python HTTP app, {len(samples)} Hoist starts, {len(bare)} bare boots (medians)")
    table([
        ("bare boot (chroot, same rootfs)", f"{b:7.1f} ms"),
        ("bare boot, a fresh overlay mount per run", f"{median(bare_fresh):7.1f} ms"),
        ("hoist start to ready", f"{total:7.1f} ms"),
        ("  network namespace + veth", f"{net:7.1f} ms"),
        ("  bundle (overlay, cgroup, config.json)", f"{bundle:7.1f} ms"),
        ("  crun spawn", f"{crun:7.1f} ms"),
        ("  boot and readiness (crun init + app + probe)", f"{ready:7.1f} ms"),
        ("platform overhead (hoist - bare)", f"{total - b:7.1f} ms   (target < 20 ms)"),
    ])


if __name__ == "__main__":
    sys.exit(main())
