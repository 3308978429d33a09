"""The gateway under a slowloris flood: a normal client's latency while SLOW (5,000)
connections that each sent part of a request head are held open.

One `hoist server` (its defaults: the open-file limit raised to the hard one, the gateway's
connection cap worked out from it) runs the minimal Python app from common.py as a persistent
service (`--min-instances 1`, so no cold start or freeze gets in the way). Each round
measures, for the same client:

- keep-alive: WARMUP then REQUESTS sequential GETs on one kept-alive connection (Python
  http.client), the median and p99 of their latencies;
- new connection: CONNECTS GETs each on a fresh connection (`Connection: close`), the median:
  this is the path a flood gets in the way of (accept, the cap, a slot for the connection);

first with nothing else open ("idle"), then with SLOW connections held ("held"): sockets that
sent `GET / HTTP/1.1`, the Host header and the start of another header, and nothing more. The
slow connections are opened before the held measurement and closed after it (within the
gateway's 30 s head timeout, which would otherwise close them); ROUNDS rounds alternate idle
and held, and the medians over the rounds are reported with their ratio (held / idle), which
the gateway should keep under 2. While they are held the server's open descriptors, its RSS
and the bytes its log grew by are printed too.

Run from bench/: `python3 slow_connections.py` (SLOW, ROUNDS, REQUESTS, CONNECTS override).
"""

import http.client
import os
import resource
import socket
import statistics
import sys
import time

from common import MINIMAL_APP, Server, git_repo, median, table

SLOW = int(os.environ.get("SLOW", "5000"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
REQUESTS, WARMUP = int(os.environ.get("REQUESTS", "2000")), 200
CONNECTS = int(os.environ.get("CONNECTS", "300"))
NAME = "steady"
HOST = f"{NAME}.localhost"
TOML = 'runtime = "python"\nstart = "python3 app.py"\nmemory = 512\n'


def raise_own_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need + 100:
        raise SystemExit(f"this process may open {soft} files; {need} slow connections need more")


def keep_alive_latencies(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times = []
    try:
        for i in range(WARMUP + REQUESTS):
            t0 = time.perf_counter()
            conn.request("GET", "/", headers={"Host": HOST})
            r = conn.getresponse()
            r.read()
            dt = (time.perf_counter() - t0) * 1000
            if r.status != 200:
                raise SystemExit(f"the gateway answered {r.status}")
            if i >= WARMUP:
                times.append(dt)
    finally:
        conn.close()
    return times


def new_connection_latencies(port):
    times = []
    for _ in range(CONNECTS):
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/", headers={"Host": HOST, "Connection": "close"})
            r = conn.getresponse()
            r.read()
        finally:
            conn.close()
        if r.status != 200:
            raise SystemExit(f"the gateway answered {r.status}")
        times.append((time.perf_counter() - t0) * 1000)
    return times


def hold_slow(port, n):
    partial = f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\nX-Slow: ".encode()
    held = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(partial)
        held.append(s)
    return held


def still_open(socks):
    """How many of `socks` the server has not closed."""
    n = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                continue  # closed
        except BlockingIOError:
            pass
        except OSError:
            continue
        n += 1
    return n


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def p99(xs):
    return statistics.quantiles(xs, n=100)[98] if len(xs) >= 100 else float("nan")


def main():
    raise_own_limit(SLOW + CONNECTS)
    server = Server("slow")
    try:
        repo = git_repo(None, {"app.py": MINIMAL_APP, "hoist.toml": TOML})
        server.hoist("deploy", repo, "--name", NAME, "--min-instances", "1")
        results = {k: [] for k in ("idle ka", "held ka", "idle new", "held new", "idle p99",
                                   "held p99")}
        notes = []
        for rnd in range(ROUNDS):
            ka, new = keep_alive_latencies(server.gw_port), new_connection_latencies(server.gw_port)
            results["idle ka"].append(median(ka))
            results["idle p99"].append(p99(ka))
            results["idle new"].append(median(new))

            log0 = os.path.getsize(server.log.name)
            t0 = time.monotonic()
            held = hold_slow(server.gw_port, SLOW)
            opened = time.monotonic() - t0
            ka, new = keep_alive_latencies(server.gw_port), new_connection_latencies(server.gw_port)
            results["held ka"].append(median(ka))
            results["held p99"].append(p99(ka))
            results["held new"].append(median(new))
            fds = len(os.listdir(f"/proc/{server.proc.pid}/fd"))
            notes.append((rnd, opened, still_open(held), fds, rss_kb(server.proc.pid),
                          os.path.getsize(server.log.name) - log0))
            for s in held:
                s.close()
            # Let the gateway see the closes before the next idle measurement.
            deadline = time.monotonic() + 30
            while (len(os.listdir(f"/proc/{server.proc.pid}/fd")) > 200
                   and time.monotonic() < deadline):
                time.sleep(0.1)
        print(f"gateway latency with {SLOW} slow connections held (medians of {ROUNDS} rounds; "
              f"keep-alive: {REQUESTS} sequential requests, new: {CONNECTS} connections)")
        for rnd, opened, kept, fds, rss, logged in notes:
            print(f"  round {rnd + 1}: {SLOW} opened in {opened:.1f} s, {kept} still open after "
                  f"the measurement; server: {fds} open files, RSS {rss / 1024:.0f} MB, "
                  f"log +{logged} bytes")
        m = {k: median(v) for k, v in results.items()}
        table([
            ("keep-alive median, idle", f"{m['idle ka']:.3f} ms (p99 {m['idle p99']:.3f} ms)"),
            ("keep-alive median, held", f"{m['held ka']:.3f} ms (p99 {m['held p99']:.3f} ms)"),
            ("keep-alive held / idle", f"{m['held ka'] / m['idle ka']:.2f}x"),
            ("new connection median, idle", f"{m['idle new']:.3f} ms"),
            ("new connection median, held", f"{m['held new']:.3f} ms"),
            ("new connection held / idle", f"{m['held new'] / m['idle new']:.2f}x"),
        ])
        worst = max(m["held ka"] / m["idle ka"], m["held new"] / m["idle new"])
        if worst >= 2:
            print(f"FAIL: latency with slow connections held is {worst:.2f}x idle (limit 2x)")
            sys.exit(1)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
