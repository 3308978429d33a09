#!/usr/bin/env bash
# Installs what is needed and runs every test: unit tests of each crate and the end-to-end
# suite, which starts real `hoist server`s and deploys real apps (Flask with gunicorn,
# Express, FastAPI) into crun sandboxes. Runtimes are built once into the shared cache.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
export HOIST_RUNTIME_CACHE=${HOIST_RUNTIME_CACHE:-/var/cache/hoist/runtimes}

cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace 2>&1
