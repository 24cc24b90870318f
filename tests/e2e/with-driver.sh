#!/usr/bin/env bash
# Runs "$@" with an Xvfb display (1280x800) and tauri-driver listening on 127.0.0.1:4444, then stops both.
# Shared by tests/e2e/run.sh (the end-to-end test) and scripts/bench-app.sh (the app benchmarks).
set -euo pipefail
DRIVER=$(command -v tauri-driver || echo "$HOME/.cargo/bin/tauri-driver")
log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DRIVER LOG="$log"
xvfb-run -a -s "-screen 0 1280x800x24" bash -c '
  "$DRIVER" --port 4444 >"$LOG" 2>&1 & p=$!
  for i in $(seq 50); do (echo > /dev/tcp/127.0.0.1/4444) 2>/dev/null && break; sleep 0.2; done
  "$@"; r=$?
  kill $p 2>/dev/null; wait $p 2>/dev/null
  [ $r = 0 ] || cat "$LOG" >&2
  exit $r' with-driver "$@"
