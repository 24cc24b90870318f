#!/usr/bin/env bash
# Sets up and runs nbtrail on the committed sample logs: installs what the desktop app builds against,
# builds the UI and the release binaries, ingests sample-logs/ into a fresh case folder (sample.case/),
# analyzes every session, prints the case summary and the planted incident, and opens the desktop app on
# that case. Without a display (no $DISPLAY / $WAYLAND_DISPLAY) it stops after the printed summary.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo not found: install the Rust toolchain (rustup) first" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm not found: install Node.js 20+ with npm first" >&2; exit 1; }
need=()
for pkg in build-essential pkg-config libwebkit2gtk-4.1-dev librsvg2-dev libssl-dev libxdo-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}"
fi
(cd ui && npm ci --no-audit --no-fund --loglevel=error && node_modules/.bin/vite build)
cargo build --release --locked -p nbtrail --bin nbtrail -p nbtrail-app --bin nbtrail-app
NB=target/release/nbtrail
CASE=${NBTRAIL_CASE:-sample.case}
rm -rf "$CASE"
$NB ingest --case "$CASE" sample-logs > "$CASE.ingest-report.json"
echo "ingest report: $CASE.ingest-report.json"
# `analyze` exits 1 when it finds something (a CI gate); here findings are expected.
rc=0
$NB analyze --case "$CASE" --sarif "$CASE.findings.sarif" > /dev/null || rc=$?
[ "$rc" -le 1 ] || exit "$rc"
echo "findings as SARIF: $CASE.findings.sarif"
echo
$NB summary --case "$CASE"
echo
$NB findings --case "$CASE"
echo
$NB sessions --case "$CASE" --user alice.nguyen@example.com
echo
echo "The planted incident, replayed with its findings:"
ID=$($NB sessions --case "$CASE" --notebook /Users/alice.nguyen@example.com/churn_scratch --json | grep -o '"id": "[0-9a-f]*' | head -1 | cut -d'"' -f4)
$NB replay --case "$CASE" "$ID"
echo
echo "The incident's user, seen whole (activity, sessions, findings and event detections):"
$NB user --case "$CASE" alice.nguyen@example.com
echo
echo "Who read secrets in code, and what touched the customers table:"
$NB search --case "$CASE" --limit 5 'code:secrets.get'
echo
$NB search --case "$CASE" --limit 5 'table:prod.crm.customers user:alice'
echo
$NB tables --case "$CASE"
echo
CASE_ABS=$(cd "$CASE" && pwd)
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  echo "Opening the desktop app on $CASE (Search → secrets.get → open the session to see the incident)…"
  exec target/release/nbtrail-app "$CASE_ABS"
else
  echo "No display: run  target/release/nbtrail-app $CASE_ABS  from a desktop session to review the case."
fi
