"""Redeploy of an unchanged Flask app with a warm runtime and package cache: the wall time of
`hoist deploy` against the time of its own `pip install` (read from the build log)."""

import os
import sys
import time
from datetime import datetime

from common import ROOT, Server, git_repo, median, table

RUNS = int(os.environ.get("RUNS", "5"))


def ts(line):
    return datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def main():
    repo = git_repo(os.path.join(ROOT, "examples", "flask-hello"))
    server = Server("redeploy")
    totals, pips = [], []
    try:
        server.hoist("deploy", repo, "--name", "flask")  # warms runtime and pip cache
        for _ in range(RUNS):
            t0 = time.monotonic()
            server.hoist("deploy", repo, "--name", "flask")
            totals.append(time.monotonic() - t0)
            build = server.logs("flask")
            start = [l for l in build if "==> running build command" in l][-1]
            end = [l for l in build if "==> storing the app layer" in l][-1]
            pips.append(ts(end) - ts(start))
    finally:
        server.stop()
    t, p = median(totals), median(pips)
    print(f"redeploy of unchanged examples/flask-hello, warm caches, {RUNS} runs (medians)")
    table([
        ("hoist deploy, wall time", f"{t:6.2f} s"),
        ("  of which pip install (build sandbox)", f"{p:6.2f} s"),
        ("platform overhead (total - pip)", f"{t - p:6.2f} s   (target < 3 s)"),
    ])


if __name__ == "__main__":
    sys.exit(main())
