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
