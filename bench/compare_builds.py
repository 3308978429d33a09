"""Two builds of Hoist side by side: the gateway's throughput and its server's CPU per request.

    python3 compare_builds.py OLD_BINARY NEW_BINARY [server flags...]

Each binary runs its own `hoist server` with the Go hello-world of proxy.py deployed
(`--min-instances 1`), and `wrk -t2 -c64` goes through each gateway in turn, ROUNDS rounds of
DURATION seconds, alternating which goes first. A change of a few per cent is below the noise
between two runs on these machines, but not between two binaries measured in one run: this is
how a change to the request path (or to the release profile) is checked before it is kept.
Server flags (e.g. --no-request-logging) go to both servers.
"""

import os
import shutil
import sys

import common
import proxy
from common import Server, git_repo, median
from proxy import GO_MOD, MAIN_GO, TOML, cpu_seconds, wrk

ROUNDS = int(os.environ.get("ROUNDS", "6"))
DURATION = int(os.environ.get("DURATION", "5"))


def start(key, binary, extra, repo):
    # Server and deploy() take the binary from these module globals.
    common.HOIST = proxy.HOIST = binary
    server = Server(f"compare-{key}", extra)
    proxy.deploy(server, repo)
    return server


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    binaries = {"old": sys.argv[1], "new": sys.argv[2]}
    for b in binaries.values():
        if not os.access(b, os.X_OK):
            raise SystemExit(f"{b}: not an executable")
    extra = tuple(sys.argv[3:])
    proxy.ensure_tools()
    repo = git_repo(None, {"main.go": MAIN_GO, "go.mod": GO_MOD, "hoist.toml": TOML})
    servers, runs = {}, {"old": [], "new": []}
    try:
        for key, binary in binaries.items():
            servers[key] = start(key, binary, extra, repo)
        for s in servers.values():
            wrk(f"http://127.0.0.1:{s.gw_port}/", 2, 64, 2)  # warm-up
        for r in range(ROUNDS):
            for key in ("old", "new") if r % 2 == 0 else ("new", "old"):
                s = servers[key]
                cpu0 = cpu_seconds(s.proc.pid)
                rps, _, p99, errors, count = wrk(f"http://127.0.0.1:{s.gw_port}/", 2, 64, DURATION)
                cpu = (cpu_seconds(s.proc.pid) - cpu0) * 1e6 / count
                runs[key].append((rps, cpu))
                print(f"  round {r + 1} {key}: {rps:9.0f} req/s  p99 {p99:.2f} ms  "
                      f"server CPU {cpu:5.1f} us/req  errors {errors}", flush=True)
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(repo, ignore_errors=True)
    old, new = runs["old"], runs["new"]
    print()
    print(f"{ROUNDS} rounds of wrk -t2 -c64 -d{DURATION}s through each gateway (medians)")
    common.table([
        ("old: " + binaries["old"], f"{median([x[0] for x in old]):9.0f} req/s  "
                                     f"{median([x[1] for x in old]):5.1f} us/req"),
        ("new: " + binaries["new"], f"{median([x[0] for x in new]):9.0f} req/s  "
                                     f"{median([x[1] for x in new]):5.1f} us/req"),
        ("new / old req/s, median of the rounds",
         f"{median([n[0] / o[0] for o, n in zip(old, new)]):9.2f}"),
        ("new / old CPU per request, median of the rounds",
         f"{median([n[1] / o[1] for o, n in zip(old, new)]):9.2f}"),
    ])


if __name__ == "__main__":
    sys.exit(main())
