#!/usr/bin/env bash
# Search benchmark (issue 3), in one run on one machine:
#  1. full ingest of N generated events (default 1,000,000) into a new case — store + search index — with
#     the two phases' times from the ingest report, wall time and peak RSS;
#  2. search latency p50/p95/p99 for a fixed mix of auditor queries with facets, histogram and snippets
#     (crates/search/benches/latency.rs);
#  3. the baseline: ripgrep over the same raw file for the text of each query (files in page cache).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
DATA=bench-data
mkdir -p "$DATA"
command -v /usr/bin/time >/dev/null || apt-get install -y -q time >/dev/null
command -v rg >/dev/null && command -v bc >/dev/null || apt-get install -y -q ripgrep bc >/dev/null
cargo build --release --locked --workspace -q
FILE="$DATA/bench-varied-$N.json"  # cell code varied from its templates (write_bench, since 2026-11-22)
[ -f "$FILE" ] || target/release/nbtrail-samplegen bench --out "$FILE" --events "$N"
CASE="$PWD/$DATA/bench.case"
rm -rf "$CASE"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}'); $(date -u +%Y-%m-%d)"
echo "input: $FILE, $(wc -l < "$FILE") records, $(($(stat -c %s "$FILE") / 1000000)) MB"
/usr/bin/time -f "%e %M" -o "$DATA/time.txt" target/release/nbtrail ingest --case "$CASE" "$FILE" -q > "$DATA/out.json"
read -r secs rss_kb < "$DATA/time.txt"
python3 - "$DATA/out.json" "$secs" "$rss_kb" "$CASE" <<'PY'
import json, sys, os
r = json.load(open(sys.argv[1])); wall = float(sys.argv[2]); rss = int(sys.argv[3]) / 1024
ix = r["index"]; store = r["elapsed_ms"] / 1000; index = ix["elapsed_ms"] / 1000
size = lambda d: sum(os.path.getsize(os.path.join(p, f)) for p, _, fs in os.walk(d) for f in fs) / 1e6
print(f"\n| ingest of {r['events']} events | wall | store | index | events/s | peak RSS | case | of which index |")
print("|---|---|---|---|---|---|---|---|")
print(f"| store + index, one run | {wall:.1f} s | {store:.1f} s | {index:.1f} s | {r['events']/wall:,.0f} | {rss:.0f} MB "
      f"| {size(sys.argv[4]):.0f} MB | {size(os.path.join(sys.argv[4], 'index')):.0f} MB |")
PY
echo
NBTRAIL_BENCH_CASE="$CASE" cargo bench -q --locked -p nbtrail-search --bench latency 2>/dev/null
echo
echo "| ripgrep baseline (same file) | pattern | matching lines | wall |"
echo "|---|---|---|---|"
rgq() { # label, rg args...
  local label=$1; shift
  local start end n
  start=$(date +%s.%N)
  n=$(rg -c "$@" "$FILE" || echo 0)
  end=$(date +%s.%N)
  printf "| %s | \`%s\` | %s | %.0f ms |\n" "$label" "${*: -1}" "$n" "$(echo "($end - $start) * 1000" | bc)"
}
rg -c x "$FILE" > /dev/null # warm the page cache
rgq "user:alice" -F 'alice.nguyen@'
rgq "table:prod.crm.customers" -i 'prod.?\.?.?crm.?\.?.?customers'
rgq "spark.read.table" -F 'spark.read.table'
rgq "\"GROUP BY region\"" -i 'group by region'
rgq "action:getTable user:bob" '"actionName":"getTable".*bob\.martin|bob\.martin.*"actionName":"getTable"'
rgq "saveAsTable OR insertInto" 'saveAsTable|insertInto'
rgq "custom*" -i 'custom'
rgq "status:failed" -F '"status":"failed"'
rgq "toPandas" -F 'toPandas'
