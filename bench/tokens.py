"""What token roles cost an API request: the latency of requests made with the server's admin
token and with a `deploy` token scoped to one service, on this build and (with OLD set) on a
build from before token roles, which knew the admin token only.

One `hoist server` per build, with the minimal Python app from common.py deployed as NAME (a
scoped token needs an existing service). Each case is REQUESTS sequential GETs on one
kept-alive connection (Python http.client) after WARMUP, in ROUNDS rounds; the medians over
the rounds of each round's median and p99 are printed, in microseconds:

- `GET /v1/server`: a `Signed` line of the route table, so the token lookup and the table only;
- `GET /v1/services/NAME`: a `Service(read)` line, checked against the token's service;
- `GET /v1/deployments/d-0000000000`, a deployment that does not exist (the handler's 404):
  a `Deployment(read)` line, for which the layer looks up the deployment's service when the
  token is scoped.

Run from bench/: `python3 tokens.py`, or `OLD=/path/to/older/hoist python3 tokens.py` for the
comparison (ROUNDS, REQUESTS override).
"""

import http.client
import json
import os
import statistics
import time

import common
from common import MINIMAL_APP, Server, git_repo, median

ROUNDS = int(os.environ.get("ROUNDS", "5"))
REQUESTS, WARMUP = int(os.environ.get("REQUESTS", "2000")), 200
OLD = os.environ.get("OLD")
NAME = "web"
TOML = 'runtime = "python"\nstart = "python3 app.py"\nmemory = 256\n'
PATHS = ["/v1/server", f"/v1/services/{NAME}", "/v1/deployments/d-0000000000"]


def latencies(port, token, path):
    """Per-request latency in µs, and the status every request got."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {token}"}
    times, statuses = [], set()
    try:
        for i in range(WARMUP + REQUESTS):
            t0 = time.perf_counter()
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            r.read()
            dt = (time.perf_counter() - t0) * 1e6
            statuses.add(r.status)
            if i >= WARMUP:
                times.append(dt)
    finally:
        conn.close()
    return times, statuses


def p99(xs):
    return statistics.quantiles(xs, n=100)[98]


def measure(binary, label, scoped):
    # common.Server runs common.HOIST: this build, or the older one.
    common.HOIST = binary
    server = Server(f"tokens-{label}")
    try:
        repo = git_repo(None, {"app.py": MINIMAL_APP, "hoist.toml": TOML})
        server.hoist("deploy", repo, "--name", NAME)
        tokens = {"admin": server.token}
        if scoped:
            out = server.hoist("tokens", "create", "--name", "ci", "--role", "deploy",
                               "--service", NAME, "--json")
            tokens["deploy, service web"] = json.loads(out)["secret"]
        results = {}
        for _ in range(ROUNDS):
            for who, token in tokens.items():
                for path in PATHS:
                    times, statuses = latencies(server.api_port, token, path)
                    key = (who, path)
                    results.setdefault(key, {"med": [], "p99": [], "status": set()})
                    results[key]["med"].append(median(times))
                    results[key]["p99"].append(p99(times))
                    results[key]["status"] |= statuses
        for (who, path), r in results.items():
            print(f"  {label:<5} {who:<20} {path:<32} median {median(r['med']):7.1f} µs"
                  f"  p99 {median(r['p99']):7.1f} µs  status {sorted(r['status'])}")
    finally:
        server.stop()


def main():
    print(f"{ROUNDS} rounds of {REQUESTS} keep-alive requests per case")
    new = common.HOIST
    if OLD:
        measure(OLD, "old", scoped=False)
    measure(new, "new", scoped=True)


if __name__ == "__main__":
    main()
