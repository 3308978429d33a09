#!/usr/bin/env bash
# Quick start: installs what is needed, builds Hoist, starts the server, deploys the bundled
# Flask example and prints its URL and its answer.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

echo "==> building hoist (release)"
cargo build --release --quiet
hoist=$PWD/target/release/hoist
export HOIST_DATA_DIR=${HOIST_DATA_DIR:-/var/lib/hoist}
export HOIST_RUNTIME_CACHE=${HOIST_RUNTIME_CACHE:-/var/cache/hoist/runtimes}
mkdir -p "$HOIST_DATA_DIR"

if ! curl -fsS http://127.0.0.1:7070/healthz >/dev/null 2>&1; then
  echo "==> starting hoist server (log: $HOIST_DATA_DIR/server.log)"
  # Apps reach no port of this host unless it is listed, e.g. HOIST_HOST_PORTS=5432 for a
  # PostgreSQL here (the server reads the variable, as it would --host-ports 5432).
  echo "    host ports open to apps: ${HOIST_HOST_PORTS:-none (set HOIST_HOST_PORTS=5432,6379 to open some)}"
  nohup "$hoist" server --data-dir "$HOIST_DATA_DIR" >>"$HOIST_DATA_DIR/server.log" 2>&1 &
  for _ in $(seq 1 100); do
    curl -fsS http://127.0.0.1:7070/healthz >/dev/null 2>&1 && break
    sleep 0.1
  done
fi

echo "==> deploying examples/flask-hello (the first run also builds the python runtime, about a minute)"
url=$("$hoist" deploy examples/flask-hello --name hello | tee /dev/stderr | tail -n 1)
echo
echo "==> $url answers:"
curl -fsS "$url"
echo
echo "==> dashboard: http://127.0.0.1:7070/"
echo "    sign in with the admin token: cat $HOIST_DATA_DIR/admin-token"
echo "Next: $hoist status hello | $hoist logs hello -f | $hoist ls"
