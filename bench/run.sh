#!/usr/bin/env bash
# Runs the benchmarks of BENCHMARKS.md on this machine: builds Hoist in release mode, then
# measures scale-from-zero and thaw against the app's bare boot and a warm request, 1000 idle
# services, redeploy time against pip's, the gateway as a reverse proxy against nginx, what
# the access log and request metrics cost it, and log search over 1 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
command -v python3 >/dev/null || { apt-get update -qq; apt-get install -y -qq python3 >/dev/null; }
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet
cd bench
python3 serverless.py
echo
python3 services.py
echo
python3 redeploy.py
echo
python3 proxy.py
echo
REQUEST_LOGGING=off python3 proxy.py
echo
python3 access_log.py
echo
python3 grep.py
