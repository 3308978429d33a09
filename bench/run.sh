#!/usr/bin/env bash
# Runs the benchmarks of BENCHMARKS.md on this machine: builds Hoist in release mode, then
# measures instance start-up against the app's bare boot, redeploy time against pip's, and the
# gateway as a reverse proxy against nginx.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
command -v python3 >/dev/null || { apt-get update -qq; apt-get install -y -qq python3 >/dev/null; }
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet
cd bench
python3 startup.py
echo
python3 redeploy.py
echo
python3 proxy.py
