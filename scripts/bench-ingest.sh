#!/usr/bin/env bash
# Ingest benchmark: generates N delivered-JSON events (default 1,000,000) and measures, in one run on the
# same file, parse-only speed (`nbtrail check`) and full ingest into a fresh case (store only, no index),
# with wall time and peak RSS from /usr/bin/time. Prints a Markdown table row set for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
DATA=bench-data
mkdir -p "$DATA"
command -v /usr/bin/time >/dev/null || { apt-get install -y -q time >/dev/null; }
cargo build --release --locked --workspace -q
FILE="$DATA/bench-varied-$N.json"  # cell code varied from its templates (write_bench, since 2026-11-22)
[ -f "$FILE" ] || target/release/nbtrail-samplegen bench --out "$FILE" --events "$N"
BYTES=$(stat -c %s "$FILE")
LINES=$(wc -l < "$FILE")

measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$DATA/time.txt" "$@" > "$DATA/out.json" 2>/dev/null
  read -r secs rss_kb < "$DATA/time.txt"
  awk -v l="$label" -v s="$secs" -v r="$rss_kb" -v n="$LINES" -v b="$BYTES" \
    'BEGIN { printf "| %s | %d | %.2f s | %.0f | %.1f | %.0f MB |\n", l, n, s, n/s, b/s/1e6, r/1024 }'
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}'); $(date -u +%Y-%m-%d)"
echo "input: $FILE, $LINES records, $((BYTES / 1000000)) MB"
echo
echo "| run | records | wall | records/s | MB/s | peak RSS |"
echo "|---|---|---|---|---|---|"
# The machine is shared and drifts by ±30%: parse-only and ingest runs are interleaved REPS times (default 3)
# so that each ingest has a baseline from the same minute.
REPS=${REPS:-3}
for i in $(seq 1 "$REPS"); do
  measure "parse only (nbtrail check), run $i" target/release/nbtrail check "$FILE" -q
  rm -rf "$DATA/bench.case"
  measure "ingest into a new case, run $i" target/release/nbtrail ingest --no-index --case "$DATA/bench.case" "$FILE" -q
done
python3 - "$DATA/out.json" <<'PY' || true
import json, sys
r = json.load(open(sys.argv[1]))
print(f"\ningest report: lines={r['lines']} events={r['events']} duplicates={r['duplicates']} errors={r['error_count']} sessions={r['sessions']}")
PY
echo "case size: $(du -sm "$DATA/bench.case" | cut -f1) MB"
measure "re-ingest (all duplicates)" target/release/nbtrail ingest --no-index --case "$DATA/bench.case" "$FILE" -q
