#!/usr/bin/env bash
# Sets up a fresh Debian machine (Rust toolchain assumed, as on this project's machines) and runs every
# check and test: formatting, lints, unit, property and end-to-end tests. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# chromium: the evidence test opens report.html in a real browser (headless).
# WebKitGTK & co: the desktop app (Tauri v2) builds against them; xvfb + webkit2gtk-driver run its
# end-to-end test in a real window without a display; imagemagick's import takes its screenshots.
for pkg in build-essential pkg-config chromium libwebkit2gtk-4.1-dev librsvg2-dev libssl-dev libxdo-dev \
           xvfb xauth webkit2gtk-driver imagemagick; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# python3 with venv + pip: the gateway tests run a real jupyter_server/ipykernel from PyPI in a venv
# (tests/gateway_support creates target/jupyter-venv from tests/jupyter-requirements.txt on first use).
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  need_apt+=(python3 python3-venv python3-pip)
fi
# Java: the Spark job's test runs pyspark (PyPI) on a local Spark, which needs a JRE (17+).
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
# setpriv (util-linux): when run as root, the gateway test runs the gateway as `nobody`.
command -v setpriv >/dev/null || need_apt+=(util-linux)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_apt[@]}"
fi
command -v cargo >/dev/null || { echo "cargo not found: install the Rust toolchain (rustup) first" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm not found: install Node.js 20+ with npm first" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy 2>/dev/null || true

# Tests link many crates: keep debug info small and skip incremental caches (a clean CI build never
# reuses them, and they doubled target/ until a CI run hit "No space left on device").
export CARGO_PROFILE_DEV_DEBUG=0
export CARGO_INCREMENTAL=0
df -h . | tail -1 | awk '{print "disk before build: " $4 " free"}'
export CARGO_TERM_COLOR=never

# tauri-driver bridges WebDriver to WebKitWebDriver for the app's end-to-end test.
command -v tauri-driver >/dev/null || [ -x "$HOME/.cargo/bin/tauri-driver" ] ||
  cargo install tauri-driver --locked --version 2.1.0

# Wall time of each phase, printed at the end (issue 20: the suite's cost is recorded, not guessed).
phases=()
phase_start=0
phase() { # closes the running phase under name $1
  phases+=("$1: $((SECONDS - phase_start)) s")
  phase_start=$SECONDS
}
phase "setup (apt, toolchain, tauri-driver)"

# The UI: exact dependencies from the lock file, type check, unit tests, then the build that the app
# embeds (the Tauri crate needs ui/dist to exist before it compiles, lints included).
echo "== ui: npm ci, svelte-check, vitest, vite build"
(cd ui && npm ci --no-audit --no-fund --loglevel=error && node_modules/.bin/svelte-check --tsconfig ./tsconfig.json --fail-on-warnings \
   && node_modules/.bin/vitest run && node_modules/.bin/vite build)
phase "ui (npm ci, svelte-check, vitest, vite build)"

echo "== cargo fmt --check"
cargo fmt --all -- --check
phase "cargo fmt --check"
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
phase "cargo clippy"
echo "== cargo test"
log=$(mktemp)
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
phase "cargo test (build and run)"
# The UI's types are generated from the Rust view types by `cargo test` (ts-rs, see .cargo/config.toml),
# and its replay fixtures are what the shell returns on the sample logs (src-tauri/tests/api.rs): the
# checked-in files must be exactly what this build writes.
echo "== generated TypeScript bindings and UI fixtures are current"
if [ -n "$(git status --porcelain -- ui/src/lib/bindings ui/src/fixtures)" ]; then
  git status --porcelain -- ui/src/lib/bindings ui/src/fixtures
  echo "ui/src/lib/bindings or ui/src/fixtures is stale: run cargo test and commit the files it writes" >&2
  [ "$status" != 0 ] || status=1
fi
echo "== Spark job on a local Spark, against the desktop (integrations/spark)"
set +e
bash integrations/spark/run-tests.sh 2>&1 | tee -a "$log"
spark=${PIPESTATUS[0]}
set -e
[ "$spark" = 0 ] || status=$spark
phase "spark job (pyspark venv, local[2])"
if [ "$status" = 0 ]; then
  echo "== desktop app end-to-end (real window under Xvfb, tauri-driver + WebKitWebDriver)"
  set +e
  bash tests/e2e/run.sh 2>&1 | tee -a "$log"
  e2e=${PIPESTATUS[0]}
  set -e
  [ "$e2e" = 0 ] || status=$e2e
  phase "desktop app end-to-end"
fi
echo "== time per phase (total $SECONDS s)"
printf '  %s\n' "${phases[@]}"
echo "== disk: target/ $(du -sh target 2>/dev/null | cut -f1), $(df -h . | tail -1 | awk '{print $4}') free"
# One closing line for the whole run (cargo prints one per test binary, the last often a doc-test "0 passed").
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     /^ok - / { e += 1 } /^not ok|AssertionError/ { ef += 1 }
     END { printf "tests: %d passed, %d failed\n", p + e, f + ef }' "$log"
rm -f "$log"
exit "$status"
