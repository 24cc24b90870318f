#!/usr/bin/env bash
# Input-format benchmark (issue 18): the same N generated events (default 200,000) as JSON lines and as the
# columnar forms real exports take — `system.access.audit` as JSON lines vs Parquet, Azure resource logs as
# JSON lines vs an Event Hubs Capture Avro file ({"records":[…]} bodies of 100) — read by `nbtrail check`
# (frame, parse, normalize; nothing stored) and ingested into a fresh case (`--no-index`), interleaved REPS
# times (default 2) so every figure has its JSON-lines baseline from the same minute. Wall time and peak RSS
# from /usr/bin/time. Prints Markdown rows for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
REPS=${REPS:-2}
DATA=bench-data
mkdir -p "$DATA"
command -v /usr/bin/time >/dev/null || { apt-get install -y -q time >/dev/null; }
cargo build --release --locked --workspace -q
gen() { # shape, file
  [ -f "$2" ] || target/release/nbtrail-samplegen bench --shape "$1" --out "$2" --events "$N" 2>/dev/null
}
ST_JSON="$DATA/formats-$N-system-table.jsonl"; gen system-table "$ST_JSON"
ST_PQ="$DATA/formats-$N-system-table.parquet"; gen system-table-parquet "$ST_PQ"
AZ_JSON="$DATA/formats-$N-resource-log.jsonl"; gen azure-resource-log "$AZ_JSON"
AZ_AVRO="$DATA/formats-$N-event-hubs.avro"; gen event-hubs-capture "$AZ_AVRO"

measure() { # label, file, command...
  local label=$1 file=$2; shift 2
  /usr/bin/time -f "%e %M" -o "$DATA/time.txt" "$@" > "$DATA/out.json" 2>/dev/null
  read -r secs rss_kb < "$DATA/time.txt"
  local n; n=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(r['lines'])" "$DATA/out.json")
  awk -v l="$label" -v s="$secs" -v r="$rss_kb" -v n="$n" -v b="$(stat -c %s "$file")" \
    'BEGIN { printf "| %s | %d | %.1f MB | %.2f s | %.0f | %.0f MB |\n", l, n, b/1e6, s, n/s, r/1024 }'
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}'); $(date -u +%Y-%m-%d)"
echo
echo "| run | records | file size | wall | records/s | peak RSS |"
echo "|---|---|---|---|---|---|"
for i in $(seq 1 "$REPS"); do
  for pair in "system.access.audit JSON lines:$ST_JSON" "system.access.audit Parquet:$ST_PQ" \
              "resource logs JSON lines:$AZ_JSON" "Event Hubs Capture Avro:$AZ_AVRO"; do
    label=${pair%%:*}; file=${pair#*:}
    measure "check, $label, run $i" "$file" target/release/nbtrail check "$file" -q
    rm -rf "$DATA/formats.case"
    measure "ingest, $label, run $i" "$file" target/release/nbtrail ingest --no-index --case "$DATA/formats.case" "$file" -q
  done
done
