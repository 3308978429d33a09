#!/usr/bin/env bash
# Installs what is needed and runs every test: unit tests of each crate and the end-to-end
# suite, which starts real `hoist server`s and deploys real apps (Flask with gunicorn,
# Express, FastAPI) into crun sandboxes, and the dashboard's browser suite (tests/dashboard.rs
# runs ui/e2e in Debian's chromium). Runtimes are built once into the shared cache.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# The browser suite drives Debian's chromium with playwright-core (Playwright's own browser
# download is not reachable from here, and not needed).
if ! command -v chromium >/dev/null 2>&1; then
  echo "==> installing chromium (for the dashboard's browser suite)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
export PATH="$HOME/.cargo/bin:$PATH"
export HOIST_RUNTIME_CACHE=${HOIST_RUNTIME_CACHE:-/var/cache/hoist/runtimes}

cargo fmt --all --check
# The pages and the browser suite are TypeScript: both type-check against the API's schema.
(cd ui && npm run --silent typecheck)
cargo clippy --workspace --all-targets --quiet -- -D warnings
# No doc tests: the crates have none, and an empty doc-test run must not be the last word.
# --no-fail-fast: one failing test binary must not hide what the others would have said.
log=$(mktemp)
set +e
cargo test --workspace --no-fail-fast --lib --bins --tests 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
# The pages' own unit tests (node:test through tsx: the .env parser, the SSE streams' resume
# and de-duplication); the browser suite ran above, from crates/hoist/tests/dashboard.rs.
set +e
(cd ui && npx --no-install tsx --test $(find src -name '*.test.ts' | sort)) 2>&1 | tee "$log"
ui_status=${PIPESTATUS[0]}
set -e
passed=$((passed + $(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log" | tail -1)))
failed=$((failed + $(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log" | tail -1)))
[ "$ui_status" = 0 ] || status=$ui_status
rm -f "$log"
echo
echo "summary: $passed passed, $failed failed"
exit "$status"
