#!/usr/bin/env bash
# Scale benchmark (issue 21): the same steps at 1M and 10M generated events in one run on one machine, so
# every 10M figure has its 1M baseline from the same minutes:
#   ingest with index (wall, store/index phases, peak RSS, case and index size), search latency (the
#   13-query mix of crates/search/benches/latency.rs), analysis (code + event detections), export of a
#   100k-event selection (ids spread evenly over the case), and re-opening the case (`summary`).
# Usage: bash scripts/bench-scale.sh [N1 N2 ...]   (default: 1000000 10000000)
#   NBTRAIL_BENCH_INGEST_RUNS (default 3): ingests per size (sizes taking turns), the median reported; NBTRAIL_BENCH_RUNS (10):
#   runs of each search query.
# Needs ~16 GB of free disk for 10M (input 7.8 GB, case ~7 GB). Slow: not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("${@:-1000000 10000000}")
# shellcheck disable=SC2206
SIZES=(${SIZES[*]})
DATA=bench-data
mkdir -p "$DATA"
command -v /usr/bin/time >/dev/null || apt-get install -y -q time >/dev/null
cargo build --release --locked --workspace -q
NB=target/release/nbtrail
RUNS=${NBTRAIL_BENCH_RUNS:-10}
INGEST_RUNS=${NBTRAIL_BENCH_INGEST_RUNS:-3}
all_runs=()

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}'); $(date -u +%Y-%m-%dT%H:%MZ)"
measure() { # out-var-prefix, command...  → sets ${prefix}_s, ${prefix}_mb, ${prefix}_cpu (user + sys s), ${prefix}_sys
  local p=$1; shift
  /usr/bin/time -f "%e %M %U %S" -o "$DATA/time.txt" "$@" > "$DATA/out.txt" 2> "$DATA/err.txt" || {
    local rc=$?
    # analyze exits 1 when it finds something; anything else is a failure
    [ "$rc" = 1 ] || { cat "$DATA/err.txt" >&2; exit "$rc"; }
  }
  # (a non-zero exit adds a "Command exited with non-zero status" line first)
  read -r s kb user sys < <(tail -1 "$DATA/time.txt")
  printf -v "${p}_s" '%s' "$s"
  printf -v "${p}_mb" '%s' "$((kb / 1024))"
  printf -v "${p}_cpu" '%s' "$(python3 -c "print(round($user + $sys, 1))")"
  printf -v "${p}_sys" '%s' "$sys"
}
rows=()
# Ingest with index INGEST_RUNS times per size into a new case, the sizes taking turns (1M, 10M, 1M, 10M,
# …) so that both sample the same minutes of this machine's drift (±10 % at 1M within minutes); the row
# reports the run with the median wall time, and every run is listed below the table.
declare -A runs_of
for N in "${SIZES[@]}"; do
  FILE="$DATA/bench-varied-$N.json"
  [ -f "$FILE" ] || target/release/nbtrail-samplegen bench --out "$FILE" --events "$N"
  runs_of[$N]=""
done
for ((k = 1; k <= INGEST_RUNS; k++)); do
  for N in "${SIZES[@]}"; do
    FILE="$DATA/bench-varied-$N.json"
    CASE="$PWD/$DATA/scale-$N.case"
    rm -rf "$CASE"
    measure ing "$NB" ingest --case "$CASE" "$FILE" -q
    cp "$DATA/out.txt" "$DATA/ingest-$N.json"
    read -r events store index < <(python3 -c "
import json; r = json.load(open('$DATA/ingest-$N.json'))
print(r['events'], r['elapsed_ms'] / 1000, r['index']['elapsed_ms'] / 1000)")
    runs_of[$N]+="$ing_s $store $index $ing_mb $ing_cpu $ing_sys $events"$'\n'
    echo "ingest $N run $k: ${ing_s} s (store ${store} s, index ${index} s; CPU ${ing_cpu} s, of it system ${ing_sys} s), peak RSS ${ing_mb} MB"
  done
done
for N in "${SIZES[@]}"; do
  CASE="$PWD/$DATA/scale-$N.case"
  mapfile -t runs < <(printf '%s' "${runs_of[$N]}")
  all_runs+=("$N: $(printf '%s s; ' "${runs[@]%% *}")")
  read -r ing_s store index ing_mb ing_cpu ing_sys events < <(printf '%s\n' "${runs[@]}" | sort -n | sed -n "$(((INGEST_RUNS + 1) / 2))p")
  case_mb=$(du -sm "$CASE" | cut -f1)
  index_mb=$(du -sm "$CASE/index" | cut -f1)
  NBTRAIL_BENCH_CASE="$CASE" NBTRAIL_BENCH_RUNS=$RUNS cargo bench -q --locked -p nbtrail-search --bench latency 2>/dev/null \
    > "$DATA/search-$N.md"
  read -r p50 p95 < <(awk -F'|' '/\*\*all/ { gsub(/[* ]/, "", $5); gsub(/[* ]/, "", $6); print $5, $6 }' "$DATA/search-$N.md")
  measure ana "$NB" analyze --case "$CASE"
  # A 100,000-event selection: the time range of the case's first 100,000 events (by time), as a search.
  range=$(python3 - "$CASE/case.sqlite" <<'PY'
import sqlite3, sys, datetime as dt
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
n = db.execute("SELECT count(*) FROM events").fetchone()[0]
t = [db.execute("SELECT time_ms FROM events ORDER BY time_ms LIMIT 1 OFFSET ?", (k,)).fetchone()[0] for k in (0, min(99999, n - 1))]
iso = lambda ms: dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
print(f"time:[{iso(t[0])} TO {iso(t[1])}]")
PY
)
  rm -f "$DATA/sel-$N.zip"
  measure exp "$NB" export --case "$CASE" --query "$range" -o "$DATA/sel-$N.zip" --examiner bench
  selected=$(python3 -c "import json; print(json.load(open('$DATA/out.txt')).get('events', '?'))" 2>/dev/null || echo "?")
  zip_mb=$(( $(stat -c %s "$DATA/sel-$N.zip") / 1000000 ))
  measure sum "$NB" summary --case "$CASE"
  rows+=("| $N | $events | ${ing_s} s (store ${store} s, index ${index} s; CPU ${ing_cpu} s, sys ${ing_sys} s) | ${ing_mb} MB | ${case_mb} MB (index ${index_mb} MB) | ${p50} / ${p95} ms | ${ana_s} s (CPU ${ana_cpu} s), ${ana_mb} MB | ${selected} events: ${exp_s} s, ${exp_mb} MB, ${zip_mb} MB zip | ${sum_s} s |")
  echo "${rows[-1]}"
done
echo
echo "| events asked | events | ingest + index (wall) | peak RSS | case | search p50 / p95 | analyze (wall, RSS) | export ~100k (wall, RSS, size) | open + summary |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "ingest + index, every run (wall; the table shows the median):"
printf '  %s\n' "${all_runs[@]}"
if [ "${#SIZES[@]}" = 2 ]; then
  python3 - "${runs_of[${SIZES[0]}]}" "${runs_of[${SIZES[1]}]}" <<'PY'
import statistics, sys
small, large = ([[float(x) for x in l.split()] for l in a.splitlines() if l.strip()] for a in sys.argv[1:3])
for name, col in (("wall", 0), ("CPU", 4)):
    turns = [b[col] / a[col] for a, b in zip(small, large)]
    med = statistics.median(b[col] for b in large) / statistics.median(a[col] for a in small)
    print(f"ingest {name} ratio, larger / smaller size, per turn (same minutes): "
          + ", ".join(f"{r:.2f}x" for r in turns) + f"; median of turns {statistics.median(turns):.2f}x; ratio of medians {med:.2f}x")
PY
fi
for N in "${SIZES[@]}"; do echo; echo "search at $N:"; cat "$DATA/search-$N.md"; done
