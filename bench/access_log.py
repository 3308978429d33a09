"""What the access log and per-request metrics cost the gateway (issue 5: throughput with them
on at least 0.95x with them off, in one run).

Two servers run side by side, identical but for `--no-request-logging` on one, each with the
Go hello-world of proxy.py deployed (`--min-instances 1 --max-instances 1`). `wrk -t2 -c64`
runs against each in turn for ROUNDS rounds of DURATION seconds, after a warm-up of each;
the medians of requests/s and p99 are compared, and the median of each round's ratio. With
logging on, every request also becomes an access line (in the service's access log files)
and a sample in the per-service histogram; the line count stored is checked against the
requests made, so a writer that silently fell behind would show.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

from common import HOIST, Server, git_repo, median, table
from proxy import GO_MOD, HOST, MAIN_GO, NAME, TOML, cpu_seconds, deploy, ensure_tools, get, wait_quiet, wrk

ROUNDS = int(os.environ.get("ROUNDS", "5"))
DURATION = int(os.environ.get("DURATION", "10"))
QUIET_WAIT = int(os.environ.get("QUIET_WAIT", "120"))


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    ensure_tools()
    repo = git_repo(None, {"main.go": MAIN_GO, "go.mod": GO_MOD, "hoist.toml": TOML})
    servers = {}
    runs = {"on": [], "off": []}
    cpu_us = {"on": [], "off": []}
    try:
        servers["on"] = Server("log-on", ())
        servers["off"] = Server("log-off", ("--no-request-logging",))
        for s in servers.values():
            deploy(s, repo)
        urls = {k: f"http://127.0.0.1:{s.gw_port}/" for k, s in servers.items()}
        for k, s in servers.items():
            status, _ = get("127.0.0.1", s.gw_port, HOST)
            if status != 200:
                raise SystemExit(f"{k}: the service answered {status}")
            wrk(urls[k], 2, 64, 2)
        idle = []
        for r in range(ROUNDS):
            idle.append(wait_quiet(QUIET_WAIT))
            for k in ("on", "off") if r % 2 == 0 else ("off", "on"):
                cpu0 = cpu_seconds(servers[k].proc.pid)
                res = wrk(urls[k], 2, 64, DURATION)
                cpu_us[k].append((cpu_seconds(servers[k].proc.pid) - cpu0) * 1e6 / res[4])
                runs[k].append(res)
                print(f"  round {r + 1} logging {k:3}: {res[0]:9.0f} req/s  p50 {res[1]:.3f} ms  "
                      f"p99 {res[2]:.3f} ms  errors {res[3]}  server CPU {cpu_us[k][-1]:5.1f} us/req",
                      flush=True)
        # The gateway hands access records over up to 50 ms after a batch starts.
        time.sleep(1)
        made = sum(x[4] for x in runs["on"])
        counted = sum(servers["on"].metrics("hoist_requests_total{"))
        lines = subprocess.run([HOIST, "logs", NAME, "--stream", "access", "--grep", "GET /",
                                "--tail", "100000000"], env=servers["on"].env,
                               capture_output=True, text=True).stdout.count("\n")
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(repo, ignore_errors=True)
    on = median([x[0] for x in runs["on"]])
    off = median([x[0] for x in runs["off"]])
    # The two runs of a round are back to back; their ratio is less exposed to the machine's
    # drift over the whole benchmark than the ratio of the medians.
    per_round = median([a[0] / b[0] for a, b in zip(runs["on"], runs["off"])])
    print()
    print("machine idle before each round: " + ", ".join(f"{i:.0%}" for i in idle))
    print(f"gateway with and without the access log and request metrics, wrk -t2 -c64 -d{DURATION}s, "
          f"{ROUNDS} rounds (medians)")
    table([
        ("logging on", f"{on:9.0f} req/s   p99 {median([x[2] for x in runs['on']]):6.3f} ms"),
        ("logging off", f"{off:9.0f} req/s   p99 {median([x[2] for x in runs['off']]):6.3f} ms"),
        ("on / off, median of the rounds", f"{per_round:9.2f}   (target >= 0.95)"),
        ("on / off, of the medians", f"{on / off:9.2f}"),
        ("server CPU per request, on / off", f"{median(cpu_us['on']):9.1f} us / {median(cpu_us['off']):.1f} us"),
        ("requests made / counted in /metrics", f"{made} / {counted:.0f} (warm-ups and checks included)"),
        ("access lines stored", f"{lines}"),
    ])


if __name__ == "__main__":
    sys.exit(main())
