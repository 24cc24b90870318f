#!/usr/bin/env bash
# Analyzer beside Bandit and Semgrep on public material (issue 17): installs Bandit 1.9.4 and Semgrep 1.185
# from PyPI into their own venv (Semgrep with rules written for this benchmark, scripts/peers/),
# fetches Bandit's source distribution (its example files are the corpus; kept under bench-data/, out of the
# repository) and prints recall/precision per family against this project's line-by-line ground truth
# (scripts/peers_compare.py). Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=bench-data/peers
mkdir -p "$DATA"
[ -x "$DATA/venv/bin/bandit" ] || { python3 -m venv "$DATA/venv"; "$DATA/venv/bin/pip" install -q bandit==1.9.4; }
[ -x "$DATA/venv/bin/semgrep" ] || "$DATA/venv/bin/pip" install -q semgrep==1.185.0
[ -d "$DATA/bandit-1.9.4/examples" ] || {
  "$DATA/venv/bin/pip" download -q --no-binary :all: --no-deps bandit==1.9.4 -d "$DATA"
  tar xzf "$DATA/bandit-1.9.4.tar.gz" -C "$DATA"
}
cargo build --release -q --bin nbtrail
python3 scripts/peers_compare.py "$DATA/bandit-1.9.4/examples" target/release/nbtrail "$DATA/venv/bin/bandit" \
  "$DATA/venv/bin/semgrep"
