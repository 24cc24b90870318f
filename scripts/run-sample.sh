#!/usr/bin/env bash
# Sets up and runs nbtrail on the committed sample logs: builds the release binary, ingests sample-logs/
# into a fresh case folder (sample.case/), analyzes every session, and prints the case summary, the
# findings and the sessions of the user in the planted incident.
# Until the desktop app lands this is the main job; afterwards it opens the app on that case.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo not found: install the Rust toolchain (rustup) first" >&2; exit 1; }
for pkg in build-essential pkg-config; do
  if ! dpkg -s "$pkg" >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q build-essential pkg-config
    break
  fi
done
cargo build --release --locked --bin nbtrail
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
echo "Who read secrets in code, and what touched the customers table:"
$NB search --case "$CASE" --limit 5 'code:secrets.get'
echo
$NB search --case "$CASE" --limit 5 'table:prod.crm.customers user:alice'
echo
$NB tables --case "$CASE"
