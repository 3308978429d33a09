"""Deploy from anywhere (issue 14): `hoist deploy DIR --upload` (a git bundle sent to the API,
stored, checked out) against `hoist deploy DIR` (the server reads the path), for
examples/flask-hello with warm runtime and package caches; and the bytes a re-upload sends and
stores, of the same commit and of a one-line change."""

import os
import subprocess
import sys
import time

from common import ROOT, Server, git_repo, median, table

RUNS = int(os.environ.get("RUNS", "5"))


def timed(server, *args):
    t0 = time.monotonic()
    server.hoist("deploy", *args)
    return time.monotonic() - t0


def latest_upload(server, name):
    return server.api(f"/v1/services/{name}/uploads")[0]


def main():
    repo = git_repo(os.path.join(ROOT, "examples", "flask-hello"))
    server = Server("upload")
    local, upload, received, stored = [], [], [], []
    try:
        # Warm the runtime, the package cache and (for the upload) the store.
        server.hoist("deploy", repo, "--name", "flask-local")
        server.hoist("deploy", repo, "--name", "flask-up", "--upload")
        first = latest_upload(server, "flask-up")
        # Alternate, so that a drift of the shared machine falls on both.
        for _ in range(RUNS):
            local.append(timed(server, repo, "--name", "flask-local"))
            upload.append(timed(server, repo, "--name", "flask-up", "--upload"))
            u = latest_upload(server, "flask-up")
            received.append(u["bytes_received"])
            stored.append(u["bytes_stored"])
        with open(os.path.join(repo, "app.py"), "a") as f:
            f.write("\n# one more line\n")
        subprocess.run(["git", "-C", repo, "-c", "user.name=bench", "-c",
                        "user.email=bench@example.com", "commit", "-qam", "change"], check=True)
        change_t = timed(server, repo, "--name", "flask-up", "--upload")
        change = latest_upload(server, "flask-up")
    finally:
        server.stop()
    l, u = median(local), median(upload)
    print(f"examples/flask-hello, warm caches, {RUNS} runs each, alternating (medians)")
    table([
        ("hoist deploy DIR (the server reads the path)", f"{l:6.2f} s"),
        ("hoist deploy DIR --upload (bundle, store, checkout)", f"{u:6.2f} s"),
        ("  difference", f"{u - l:+6.2f} s"),
        ("first upload: sent / newly stored", f"{first['bytes_received']} B / {first['bytes_stored']} B"),
        ("re-upload of the same commit: sent / newly stored",
         f"{median(received):.0f} B / {median(stored):.0f} B"),
        ("upload of a one-line change: sent / newly stored",
         f"{change['bytes_received']} B / {change['bytes_stored']} B ({change_t:.2f} s)"),
    ])


if __name__ == "__main__":
    sys.exit(main())
