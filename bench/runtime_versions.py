"""How long each runtime version added with issue 15 takes to build, and how big it is.

One server with an empty runtime cache of its own (RUNTIME_CACHE, default a fresh temporary
directory, removed afterwards) gets one deploy per runtime, in turn (`--no-wait`; the app is
beside the point, the deploy is what builds the runtime), and the benchmark waits until
`hoist runtimes --json` shows the runtime built. The build time is the builder's own
(`build_seconds`, from the start of the build to its publication, base excluded), the wall
time is from the deploy to the runtime showing as built, the size is the root filesystem's
(hard-linked files counted once within it).
"""

import json
import os
import shutil
import sys
import tempfile
import time

from common import Server, git_repo

ORDER = os.environ.get(
    "RUNTIMES", "debian@13,python@3.13,node@20,node@22,node@24,go@1.24,python+node"
).split(",")
TIMEOUT = int(os.environ.get("TIMEOUT", "900"))


def main():
    cache = os.environ.get("RUNTIME_CACHE") or tempfile.mkdtemp(prefix="hoist-bench-runtimes-")
    os.environ["HOIST_RUNTIME_CACHE"] = cache
    repo = git_repo(None, {"README": "runtimes\n"})
    server = Server("runtimes")
    rows = []
    try:
        for i, name in enumerate(ORDER):
            started = time.monotonic()
            server.hoist("deploy", repo, "--name", f"rt{i}", "--runtime", name,
                         "--start", "sleep 1", "--no-wait")
            deadline = started + TIMEOUT
            info = None
            while time.monotonic() < deadline:
                listed = json.loads(server.hoist("runtimes", "--json"))
                info = next(r for r in listed if r["name"] == name)
                if info["installed"]:
                    break
                time.sleep(0.5)
            else:
                raise SystemExit(f"{name} was not built within {TIMEOUT}s")
            wall = time.monotonic() - started
            rows.append((name, info["version"], info["build_seconds"], wall,
                         info["size_bytes"] / 1e6, info["source"]))
            print(f"{name:12} {info['version']:22} build {info['build_seconds']:6.1f} s  "
                  f"wall {wall:6.1f} s  {info['size_bytes'] / 1e6:6.0f} MB  {info['source']}",
                  flush=True)
    finally:
        server.stop()
        if not os.environ.get("RUNTIME_CACHE"):
            shutil.rmtree(cache, ignore_errors=True)
    print()
    print("| runtime | version | build | deploy → built | size | from |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, version, build, wall, mb, source in rows:
        print(f"| `{name}` | {version} | {build:.1f} s | {wall:.1f} s | {mb:.0f} MB | {source} |")


if __name__ == "__main__":
    sys.exit(main())
