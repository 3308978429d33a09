"""Webhook to build started (issue 14): a push to a bare repository on disk, then the webhook
delivery GitHub would send for it, signed with the service's secret; measured from the moment
the request is sent to the deployment's `building` step being recorded as started (its
`started_at`, same machine clock), and to the `202` answer. Median over RUNS pushes; each push
waits for the previous deploy to go live, so the service's queue is empty when it arrives."""

import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from common import MINIMAL_APP, Server, git_repo, median, table

RUNS = int(os.environ.get("RUNS", "20"))
# Seconds between a deploy going live and the next push: the old instance's stop and the new
# deployment's warm sandbox (crun processes) run right after the switch, and a push that
# lands on them measures them too. A push to a service at rest is the case measured.
SETTLE = float(os.environ.get("SETTLE", "2"))
TOML = 'runtime = "python"\nstart = "python3 app.py"\nmemory = 128\n'


def git(repo, *args):
    subprocess.run(["git", "-C", repo, "-c", "user.name=bench", "-c", "user.email=b@example.com",
                    *args], check=True, capture_output=True)


def rev(repo):
    return subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def deliver(server, name, secret, delivery, body):
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.api_port}/hooks/{name}/github", data=body, method="POST",
        headers={"Content-Type": "application/json", "X-GitHub-Event": "push",
                 "X-GitHub-Delivery": delivery,
                 "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body,
                                                             hashlib.sha256).hexdigest()})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def wait_deployment(server, name, delivery, until, timeout=120):
    """The push's deployment once `until(deployment)` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for d in server.api(f"/v1/services/{name}/deployments"):
            if d["trigger"].get("delivery") == delivery and until(d):
                return d
        time.sleep(0.01)
    raise SystemExit(f"deployment of {delivery} did not get there within {timeout} s")


def build_lines(server, name, deployment):
    """The deployment's build log lines as (ts, text)."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.api_port}/v1/services/{name}/logs?deployment={deployment}&tail=100000",
        headers={"Authorization": f"Bearer {server.token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        lines = [json.loads(l) for l in r.read().decode().splitlines() if l.strip()]
    return [(l["ts"], l["line"]) for l in lines if l["stream"] == "build"]


def main():
    work = git_repo(None, {"app.py": MINIMAL_APP, "hoist.toml": TOML})
    bare = os.path.join(tempfile.mkdtemp(prefix="hoist-bench-bare-"), "remote.git")
    subprocess.run(["git", "clone", "-q", "--bare", work, bare], check=True, capture_output=True)
    git(work, "remote", "add", "hoist", bare)
    server = Server("webhook")
    to_build, to_answer, to_queued, fetching, to_line, clone = [], [], [], [], [], []
    try:
        server.hoist("deploy", bare, "--name", "hook", "--branch", "main")
        secret = json.loads(server.hoist("hooks", "hook", "--json"))["secret"]
        for i in range(RUNS):
            before = rev(work)
            with open(os.path.join(work, "VERSION"), "w") as f:
                f.write(f"{i}\n")
            git(work, "add", "-A")
            git(work, "commit", "-qm", f"push {i}")
            git(work, "push", "-q", "hoist", "main")
            after = rev(work)
            delivery = f"bench-{os.getpid()}-{i}"
            body = json.dumps({"ref": "refs/heads/main", "before": before, "after": after,
                               "commits": [{"id": after, "added": [], "removed": [],
                                            "modified": ["VERSION"]}]}).encode()
            t0 = time.time()
            status = deliver(server, "hook", secret, delivery, body)
            answered = time.time()
            if status != 202:
                raise SystemExit(f"push {i}: answered {status}, not 202")
            d = wait_deployment(server, "hook", delivery,
                                lambda d: any(s["step"] == "building" for s in d["steps"]))
            started = next(s["started_at"] for s in d["steps"] if s["step"] == "building")
            fetched = next(s["started_at"] for s in d["steps"] if s["step"] == "fetching")
            to_build.append(started - t0 * 1000)
            to_queued.append(d["created_at"] - t0 * 1000)
            fetching.append(started - fetched)
            to_answer.append((answered - t0) * 1000)
            done = wait_deployment(server, "hook", delivery,
                                   lambda d: d["state"] in ("live", "failed", "cancelled"))
            if done["state"] != "live" or done["commit_sha"] != after:
                raise SystemExit(f"push {i}: {done['state']} at {done['commit_sha']}")
            time.sleep(SETTLE)
            lines = build_lines(server, "hook", d["id"])
            # `==> fetching …` is the pipeline's first line, `==> commit … on branch …` follows
            # the clone.
            to_line.append(lines[0][0] - t0 * 1000)
            cloned = next(ts for ts, text in lines if text.startswith("==> commit "))
            clone.append(cloned - lines[0][0])
        # The same clone the fetch step makes, run here on its own, for comparison.
        direct = []
        for i in range(RUNS):
            dest = tempfile.mkdtemp(prefix="hoist-bench-clone-")
            shutil.rmtree(dest)
            t = time.monotonic()
            subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--no-tags",
                            "--single-branch", "--branch", "main", "--", "file://" + bare, dest],
                           check=True, capture_output=True)
            direct.append((time.monotonic() - t) * 1000)
            shutil.rmtree(dest, ignore_errors=True)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(os.path.dirname(bare), ignore_errors=True)
    to_build.sort()
    print(f"webhook to build started, {RUNS} pushes (medians; min and max in brackets)")
    table([
        ("webhook sent -> 202 answered", f"{median(to_answer):6.1f} ms   [{min(to_answer):.1f}, {max(to_answer):.1f}]"),
        ("webhook sent -> deployment recorded", f"{median(to_queued):6.1f} ms"),
        ("webhook sent -> first build log line", f"{median(to_line):6.1f} ms   [{min(to_line):.1f}, {max(to_line):.1f}]"),
        ("  fetch step", f"{median(fetching):6.1f} ms"),
        ("    of which git clone (first line to `commit … on branch`)", f"{median(clone):6.1f} ms"),
        ("(the same git clone run on its own, for comparison)", f"{median(direct):6.1f} ms"),
        ("webhook sent -> build step started", f"{median(to_build):6.1f} ms   [{to_build[0]:.1f}, {to_build[-1]:.1f}]   (target < 100 ms)"),
    ])


if __name__ == "__main__":
    sys.exit(main())
