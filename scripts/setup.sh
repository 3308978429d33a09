#!/usr/bin/env bash
# Installs what Hoist needs on Debian 12 (as root) and builds it. Idempotent: run it again at
# any time. Used by both quick-start commands.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "error: run as root (Hoist creates containers, mounts and network namespaces)" >&2
  exit 1
fi

# crun runs the sandboxes, mmdebstrap builds the runtimes, iproute2 and iptables wire the
# instances' network, git fetches sources, tini (its static build) is every sandbox's PID 1,
# prometheus brings promtool, which tests/contract.rs checks /metrics with.
packages=(crun mmdebstrap iproute2 iptables git ca-certificates curl build-essential pkg-config tini prometheus)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  # No rustup toolchain: Debian 12 carries a current Rust (1.96) as the -web packages.
  echo "==> installing Rust from Debian (rustc-web, cargo-web, rustfmt-web, rust-web-clippy)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rustfmt-web rust-web-clippy >/dev/null
fi

# crun refuses cgroup v1 hosts with a v2 mount ("hybrid") until hugetlb has a v1 hierarchy.
# `hoist server` does this too at every start; doing it here keeps `crun` usable by hand.
if [ -d /sys/fs/cgroup/memory ] && [ ! -e /sys/fs/cgroup/hugetlb/cgroup.procs ] && grep -q '^hugetlb' /proc/cgroups; then
  mkdir -p /sys/fs/cgroup/hugetlb
  mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
fi

# The dashboard (ui/) is built with Node.js and npm and embedded in the hoist binary, so it is
# built here, before the cargo build that follows. Debian 12's nodejs is 18.20: the UI's
# toolchain is pinned to versions that run on it. The server's npm also fetches the npm
# registry's Node.js for the node@22, node@24 and python+node runtimes.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "==> installing Node.js and npm (Debian's nodejs, npm)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
# `npm ci` (a clean install from the committed lockfile) only when the lockfile changed since
# the last one: the stamp in node_modules holds the lockfile's hash.
lock_hash=$(sha256sum ui/package-lock.json | cut -d' ' -f1)
stamp=ui/node_modules/.hoist-lock-sha256
if [ "$(cat "$stamp" 2>/dev/null)" != "$lock_hash" ]; then
  echo "==> installing the dashboard's npm packages (ui/package-lock.json)"
  # npm 11 warns that esbuild's install script did not run: it only checks the binary, which
  # comes from the optional dependency @esbuild/linux-x64.
  (cd ui && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" >"$stamp"
fi
# Rebuild ui/dist when a source of it changed (their hash is kept in node_modules, not in dist,
# which the binary embeds whole), so a re-run leaves the embedded files, and cargo's build of
# them, alone.
ui_hash=$(cd ui && find index.html openapi.json package-lock.json tsconfig.json vite.config.ts src public \
  -type f ! -name schema.d.ts -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
dist_stamp=ui/node_modules/.hoist-dist-sha256
if [ ! -f ui/dist/index.html ] || [ "$(cat "$dist_stamp" 2>/dev/null)" != "$ui_hash" ]; then
  echo "==> building the dashboard (ui/dist)"
  build_log=$(mktemp)
  if ! (cd ui && npm run build) >"$build_log" 2>&1; then
    cat "$build_log" >&2
    rm -f "$build_log"
    echo "error: the dashboard's build failed (cd ui && npm run build)" >&2
    exit 1
  fi
  rm -f "$build_log"
  echo "$ui_hash" >"$dist_stamp"
fi
