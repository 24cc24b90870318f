#!/usr/bin/env bash
# Throughput of the Spark job on local[2] beside the desktop's analyzer, on the same generated events (audit
# log delivery JSON from nbtrail-samplegen's benchmark corpus), in one run:
#   desktop: nbtrail ingest --no-index + nbtrail analyze --no-detections (sessionize, then analyze)
#   spark:   python -m nbtrail_spark.job delivered:FILE (read, dedup, sessionize, analyze via RDD.pipe, write)
# Usage: bash integrations/spark/bench.sh [EVENTS]   (default 1,000,000). Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
DATA="$PWD/bench-data"
mkdir -p "$DATA"
command -v /usr/bin/time >/dev/null || apt-get install -y -q time >/dev/null
cargo build --release --locked -q -p nbtrail --bin nbtrail -p nbtrail-samplegen
FILE="$DATA/bench-varied-$N.json"
[ -f "$FILE" ] || target/release/nbtrail-samplegen bench --out "$FILE" --events "$N"
source integrations/spark/env.sh
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(date -u +%Y-%m-%dT%H:%MZ); $N events"
t() { /usr/bin/time -f "%e %M" -o "$DATA/time.txt" "$@" > "$DATA/out.txt" 2>"$DATA/err.txt" || [ $? = 1 ]; tail -1 "$DATA/time.txt"; }
CASE="$DATA/spark-bench.case"
rm -rf "$CASE"
read -r ing_s ing_kb < <(t target/release/nbtrail ingest --no-index --case "$CASE" "$FILE" -q)
read -r ana_s ana_kb < <(t target/release/nbtrail analyze --case "$CASE" --no-detections)
desk=$(echo "$ing_s + $ana_s" | bc)
sessions=$(python3 -c "import sqlite3; print(sqlite3.connect('$CASE/case.sqlite').execute('select count(*) from sessions where notebook_id not like \"sql-warehouse/%\"').fetchone()[0])")
desk_findings=$(python3 -c "import sqlite3; print(sqlite3.connect('$CASE/case.sqlite').execute('select count(*) from findings').fetchone()[0])")
OUT="$DATA/spark-bench.out"
rm -rf "$OUT"
read -r sp_s sp_kb < <(cd integrations/spark && t "$PWD/../../$venv/bin/python" -m nbtrail_spark.job --master 'local[2]' \
  --nbtrail "$PWD/../../target/release/nbtrail" --out "$OUT" "delivered:$FILE")
job=$(python3 -c "import json; c = json.load(open('$OUT/counts.json')); print(c['sessions'], c['findings'], c['seconds'])")
read -r j_sessions j_findings j_inner <<< "$job"
echo
echo "| run | wall | events/s | peak RSS | sessions | findings |"
echo "|---|---:|---:|---:|---:|---:|"
printf "| desktop: ingest (no index) + analyze | %.1f s (%.1f + %.1f) | %'.0f | %d MB | %s | %s |\n" "$desk" "$ing_s" "$ana_s" \
  "$(echo "$N / $desk" | bc)" "$(( (ing_kb > ana_kb ? ing_kb : ana_kb) / 1024 ))" "$sessions" "$desk_findings"
printf "| spark job, local[2] (JVM start included; job alone %s s) | %.1f s | %'.0f | %d MB (driver) | %s | %s |\n" "$j_inner" "$sp_s" \
  "$(echo "$N / $sp_s" | bc)" "$((sp_kb / 1024))" "$j_sessions" "$j_findings"
