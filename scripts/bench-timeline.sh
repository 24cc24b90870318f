#!/usr/bin/env bash
# Timeline export benchmark (issue 19): a case of N generated events (default 1,000,000) written as a CSV
# timeline and as Timesketch JSONL (`nbtrail timeline`, every event, streamed), then the CSV read back —
# into the same case (every row must be a duplicate: the round trip adds nothing) and into a fresh case.
# The case's own ingest of the generated JSON lines is the baseline of the same run. Wall time and peak
# RSS from /usr/bin/time. Prints Markdown rows for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
DATA=bench-data
mkdir -p "$DATA"
command -v /usr/bin/time >/dev/null || { apt-get install -y -q time >/dev/null; }
cargo build --release --locked --workspace -q
SRC="$DATA/timeline-$N-system-table.jsonl"
[ -f "$SRC" ] || target/release/nbtrail-samplegen bench --shape system-table --out "$SRC" --events "$N" 2>/dev/null
CASE="$DATA/timeline.case"; FRESH="$DATA/timeline-back.case"
rm -rf "$CASE" "$FRESH"

row() { # label, records, bytes, command...
  local label=$1 n=$2; shift 2
  /usr/bin/time -f "%e %M" -o "$DATA/time.txt" "$@" > "$DATA/out.txt" 2>"$DATA/err.txt"
  read -r secs rss_kb < "$DATA/time.txt"
  echo "$label $secs $rss_kb" >> "$DATA/timeline-rows.txt"
}
: > "$DATA/timeline-rows.txt"
row "ingest JSON lines (baseline)" "$N" target/release/nbtrail ingest --no-index --case "$CASE" "$SRC" -q
# The generator rounds to whole sessions: the case's own count is the truth from here on.
N=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['events'])" "$DATA/out.txt")
row "timeline CSV" "$N" target/release/nbtrail timeline --case "$CASE" --format csv -o "$DATA/timeline.csv"
row "timeline Timesketch JSONL" "$N" target/release/nbtrail timeline --case "$CASE" --format timesketch -o "$DATA/timeline.jsonl"
row "CSV read back into the same case" "$N" target/release/nbtrail ingest --no-index --case "$CASE" "$DATA/timeline.csv" -q
python3 - "$DATA/out.txt" "$N" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); n = int(sys.argv[2])
assert r["events"] == 0 and r["duplicates"] == n and r["conflicts"] == 0 and r["error_count"] == 0, r
PY
row "CSV ingested into a fresh case" "$N" target/release/nbtrail ingest --no-index --case "$FRESH" "$DATA/timeline.csv" -q

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}'); $(date -u +%Y-%m-%d)"
echo "events: $N; CSV $(stat -c %s "$DATA/timeline.csv" | awk '{printf "%.0f MB", $1/1e6}'), JSONL $(stat -c %s "$DATA/timeline.jsonl" | awk '{printf "%.0f MB", $1/1e6}'); round trip: every CSV row a duplicate, 0 conflicts, 0 errors"
echo
echo "| step | wall | events/s | × baseline | peak RSS |"
echo "|---|---|---|---|---|"
base=$(awk 'NR==1 {print $(NF-1)}' "$DATA/timeline-rows.txt")
while read -r line; do
  rss=${line##* }; rest=${line% *}; secs=${rest##* }; label=${rest% *}
  awk -v l="$label" -v s="$secs" -v r="$rss" -v n="$N" -v b="$base" \
    'BEGIN { printf "| %s | %.1f s | %.0f | %.2f | %.0f MB |\n", l, s, n/s, s/b, r/1024 }'
done < "$DATA/timeline-rows.txt"
