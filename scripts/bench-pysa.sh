#!/usr/bin/env bash
# Side-by-side with Pysa: installs pyre-check (PyPI) into bench-data/pysa-venv, ingests the sample logs into a
# fresh case, and runs scripts/pysa_compare.py (same sessions, same sources and sinks, wall-clock times and
# which findings each tool got). Not part of CI: it takes a minute and a PyPI install.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=bench-data
VENV=$DATA/pysa-venv
[ -x "$VENV/bin/pyre" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q pyre-check; }
cargo build --release --locked -q --bin nbtrail
rm -rf "$DATA/pysa.case" "$DATA/pysa-work" && mkdir -p "$DATA/pysa-work"
target/release/nbtrail ingest --case "$DATA/pysa.case" sample-logs -q > /dev/null
python3 scripts/pysa_compare.py "$DATA/pysa.case" "$DATA/pysa-work" "$PWD/target/release/nbtrail" "$PWD/$VENV"
