"""The dashboard's figures (issue 13): what the first page costs to fetch, how soon the services
page is usable, and that a dashboard following a busy service's logs leaves the gateway alone.

1. Size: the JavaScript and CSS the first page (`/`, signed in) loads, as Chromium's resource
   timing lists them, each file read from ui/dist (what the binary embeds) and gzipped at
   zlib's default level 6; their sum. Target < 100 KB.
2. Interactive: from navigation start to `performance.mark("hoist:services-interactive")`
   (the page marks it when the services table first shows data), read in Chromium with the
   Performance API; LOADS loads in a fresh browser context each (cold HTTP cache) and LOADS
   reloads of one page (warm), on loopback, SERVICES services listed. Medians. Target < 300 ms.
3. Gateway: `wrk -t2 -c64 -d{DURATION}s` against the gateway (bench/proxy.py's Go hello-world,
   one instance, 2048 MB), ROUNDS rounds of one run without a dashboard and one with a
   Chromium that has the service's Logs tab open, following (every request wrk makes is an
   access line streamed to it); which goes first alternates. The median of each round's
   with/without ratio. The claim: unchanged (the dashboard is not in the request path). wrk,
   the gateway, the app and Chromium share the machine's 2 cores, so the browser's own CPU
   time is printed too: any drop beyond noise would be that, not the gateway. FOLLOWER=curl
   follows the same stream with curl instead: the server's cost of streaming, alone.

Run (after `cargo build --release` and scripts/setup.sh): `cd bench && python3 dashboard.py`.
"""

import gzip
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

from common import ROOT, Server, git_repo, median, proc_table, table, MINIMAL_APP
import proxy

LOADS = int(os.environ.get("LOADS", "20"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
DURATION = int(os.environ.get("DURATION", "10"))
SERVICES = int(os.environ.get("SERVICES", "3"))
UI = os.path.join(ROOT, "ui")
DIST = os.path.join(UI, "dist")
# FOLLOWER=curl follows the same log stream with curl instead of a browser: the server's own
# cost of the stream, without Chromium's rendering on the same cores.
FOLLOWER = os.environ.get("FOLLOWER", "browser")
# PARTS=pages or PARTS=gateway measures one half only (both by default).
PARTS = os.environ.get("PARTS", "pages,gateway").split(",")
SMALL_TOML = 'runtime = "python"\nstart = "python3 app.py"\nmemory = 512\n'


def browser(server, *args):
    """The browser half (ui/e2e/bench-pages.ts) as a child with pipes, stdout line-buffered."""
    env = dict(os.environ, HOIST_E2E_API=f"http://127.0.0.1:{server.api_port}",
               HOIST_E2E_TOKEN=server.token)
    # FOLLOWER_NICE=19 gives the browser only the CPU the server leaves: a stand-in for the
    # usual case, a browser on another machine than the server.
    nice = ["nice", "-n", os.environ["FOLLOWER_NICE"]] if os.environ.get("FOLLOWER_NICE") else []
    return subprocess.Popen([*nice, "node", "--import", "tsx", "e2e/bench-pages.ts", *args], cwd=UI,
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def read_line(proc, timeout):
    """One line of the child's stdout within `timeout` seconds, else an error."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        raise SystemExit(f"the browser said nothing within {timeout} s")
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"the browser exited ({proc.wait()}) before answering")
    return line.strip()


def tree(pid, procs):
    """A process and all its descendants (Chromium is many)."""
    found, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, (_, ppid, _) in procs.items():
            if ppid == parent and child not in found:
                found.add(child)
                frontier.append(child)
    return found


def tree_cpu_seconds(pid):
    """User + system CPU time of a process and all its descendants."""
    procs = proc_table()
    return sum(procs[p][2] for p in tree(pid, procs) if p in procs)


def kind_of(pid):
    """What a process of the browser's tree is: node (Playwright), or Chromium's browser,
    renderer, gpu-process, utility... (its `--type=`)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            # Chromium rewrites its children's command lines into one space-separated string.
            args = f.read().replace(b"\0", b" ").split()
    except OSError:
        return "gone"
    if args and args[0].endswith(b"node"):
        return "node"
    for a in args:
        if a.startswith(b"--type="):
            return a[7:].decode(errors="replace")
    return "browser"


def cpu_by_kind(pid):
    """CPU seconds of the tree per process kind (see `kind_of`)."""
    procs = proc_table()
    out = {}
    for p in tree(pid, procs):
        if p in procs:
            k = kind_of(p)
            out[k] = out.get(k, 0.0) + procs[p][2]
    return out


def kinds_since(before, after):
    return ", ".join(f"{k} {after[k] - before.get(k, 0.0):.2f}" for k in sorted(after)
                     if after[k] - before.get(k, 0.0) >= 0.01)


def first_page(server):
    proc = browser(server, "interactive", str(LOADS))
    line = read_line(proc, 60 + LOADS * 15)
    proc.wait(timeout=30)
    result = json.loads(line)
    files = []
    for r in result["resources"]:
        path = urllib.parse.urlparse(r["url"]).path.lstrip("/")
        with open(os.path.join(DIST, path), "rb") as f:
            raw = f.read()
        files.append((path, len(raw), len(gzip.compress(raw, compresslevel=6))))
    return result, files


def gateway(server):
    repo = git_repo(None, {"main.go": proxy.MAIN_GO, "go.mod": proxy.GO_MOD, "hoist.toml": proxy.TOML})
    proxy.deploy(server, repo)
    url = f"http://127.0.0.1:{server.gw_port}/"
    proxy.wrk(url, 2, 64, 2)  # warm-up
    runs = {"without": [], "with": []}
    followed = []
    for r in range(ROUNDS):
        for mode in ("without", "with") if r % 2 == 0 else ("with", "without"):
            follower = None
            if mode == "with" and FOLLOWER == "curl":
                # What curl got goes to a file: its `data:` lines are the messages streamed.
                sink = tempfile.TemporaryFile()
                follower = subprocess.Popen(
                    ["curl", "-sN", "-H", f"Authorization: Bearer {server.token}",
                     f"http://127.0.0.1:{server.api_port}/v1/services/{proxy.NAME}/logs?follow=true&format=sse"],
                    stdout=sink, stdin=subprocess.PIPE, text=True)
                time.sleep(1)  # connected by then on loopback
            elif mode == "with":
                follower = browser(server, "follow", proxy.NAME)
                if read_line(follower, 60) != "following":
                    raise SystemExit("the Logs tab did not start following")
            idle = None
            if follower and FOLLOWER == "browser":
                # What the open page costs with nothing to show: the baseline of the figure below.
                c = tree_cpu_seconds(follower.pid)
                time.sleep(3)
                idle = (tree_cpu_seconds(follower.pid) - c) / 3
            cpu0 = tree_cpu_seconds(follower.pid) if follower else 0.0
            kinds0 = cpu_by_kind(follower.pid) if follower else {}
            res = proxy.wrk(url, 2, 64, DURATION)
            runs[mode].append(res[0])
            note = ""
            if follower and FOLLOWER == "curl":
                cpu = tree_cpu_seconds(follower.pid) - cpu0
                follower.terminate()
                follower.wait(timeout=10)
                sink.seek(0)
                messages = sum(1 for line in sink if line.startswith(b"data:"))
                sink.close()
                followed.append(({"messages": messages, "shown": 0}, cpu, res[4]))
                note = f"  curl CPU {cpu:.2f} s, {messages} log messages streamed to it for {res[4]} requests"
            elif follower:
                cpu = tree_cpu_seconds(follower.pid) - cpu0
                kinds = kinds_since(kinds0, cpu_by_kind(follower.pid))
                # Let the last lines reach the page, then ask what it got.
                time.sleep(1)
                follower.stdin.write("stop\n")
                follower.stdin.close()
                # A page that just took thousands of lines a second may answer slowly.
                got = json.loads(read_line(follower, 180))
                follower.wait(timeout=60)
                followed.append((got, cpu, res[4]))
                note = (f"  browser CPU {cpu:.1f} s (idle page {idle * DURATION:.1f} s), {got['messages']} log messages streamed "
                        f"to it for {res[4]} requests, {got['shown']} lines on the page; CPU s by process: {kinds}")
            print(f"  round {r + 1} {mode:7}: {res[0]:9.0f} req/s  p50 {res[1]:.3f} ms  "
                  f"p99 {res[2]:.3f} ms  errors {res[3]}{note}", flush=True)
    return runs, followed


def main():
    signal.signal(signal.SIGTERM, proxy.on_sigterm)
    proxy.ensure_tools()
    if not os.path.exists(os.path.join(DIST, "index.html")):
        raise SystemExit("ui/dist is missing: run scripts/setup.sh, then cargo build --release")
    server = Server("dashboard")
    try:
        repo = git_repo(None, {"app.py": MINIMAL_APP, "hoist.toml": SMALL_TOML})
        for i in range(SERVICES):
            server.hoist("deploy", repo, "--name", f"listed-{i}")
        result, files = first_page(server) if "pages" in PARTS else (None, None)
        runs, followed = gateway(server) if "gateway" in PARTS else (None, None)
    finally:
        server.stop()
    if result:
        print_pages(result, files)
    if runs:
        print_gateway(runs, followed)


def print_pages(result, files):
    total_gz = sum(f[2] for f in files)
    print()
    print(f"first page (/, signed in): {len(files)} JS/CSS files, read from ui/dist, gzip level 6")
    table([(path, f"{raw / 1024:7.1f} KB raw  {gz / 1024:6.1f} KB gzipped") for path, raw, gz in files]
          + [("total", f"{sum(f[1] for f in files) / 1024:7.1f} KB raw  {total_gz / 1024:6.1f} KB gzipped"
                       "   (target < 100 KB)"),
             ("as the server sent them (resource timing)",
              f"{sum(r['encoded'] for r in result['resources']) / 1024:7.1f} KB encoded bodies")])
    print()
    print(f"services page interactive (navigation start -> hoist:services-interactive), "
          f"{SERVICES} services, loopback, {LOADS} loads each")
    table([
        ("cold cache (fresh context), median",
         f"{median(result['cold']):6.1f} ms   (min {min(result['cold']):.1f}, max {max(result['cold']):.1f}; target < 300 ms)"),
        ("warm cache (reload), median",
         f"{median(result['warm']):6.1f} ms   (min {min(result['warm']):.1f}, max {max(result['warm']):.1f})"),
    ])
    # Where a cold load's time goes: each request's start and end, medians over the loads.
    print()
    print("cold load, ms from navigation start (medians): start -> request sent -> first byte -> last byte")
    names = sorted({n for p in result["phases"] for n in p},
                   key=lambda n: median([p[n][-1] for p in result["phases"] if n in p]))
    table([(n, "  ->  ".join(f"{median([p[n][i] for p in result['phases'] if n in p]):6.1f}"
                             for i in range(max(len(p.get(n, [])) for p in result["phases"]))))
           for n in names])


def print_gateway(runs, followed):
    ratios = [w / wo for w, wo in zip(runs["with"], runs["without"])]
    print()
    print(f"gateway, Go hello-world, wrk -t2 -c64 -d{DURATION}s, {ROUNDS} rounds (medians)")
    table([
        ("without a dashboard", f"{median(runs['without']):9.0f} req/s"),
        (f"with a follower of its logs ({FOLLOWER})", f"{median(runs['with']):9.0f} req/s"),
        ("with / without, median of the rounds",
         f"{median(ratios):9.2f}   (rounds: {', '.join(f'{r:.2f}' for r in ratios)})"),
        ("follower CPU per run, median", f"{median([f[1] for f in followed]):9.1f} s of {DURATION} s"),
        ("log messages streamed per request, median",
         f"{median([f[0]['messages'] / max(1, f[2]) for f in followed]):9.2f}"),
    ])


if __name__ == "__main__":
    sys.exit(main())
