#!/usr/bin/env bash
# Analyzer benchmark: exports every session of the 1M-event benchmark case (built by bench-ingest.sh if
# missing) as JSON lines, then times `nbtrail analyze --jsonl` (pure analysis) and `nbtrail analyze --case`
# (reading cells from the store and storing findings). Prints Markdown rows for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=bench-data
CASE=$DATA/bench.case
[ -d "$CASE" ] || bash scripts/bench-ingest.sh >/dev/null
cargo build --release --locked -q --bin nbtrail
python3 - "$CASE/case.sqlite" "$DATA/sessions.jsonl" <<'PY'
import json, sqlite3, sys
db, out_path = sys.argv[1], sys.argv[2]
c = sqlite3.connect(db)
out = open(out_path, "w")
cur, cells, n, nbytes = None, [], 0, 0
rows = c.execute("""SELECT c.session_id, e.id, e.command_text, e.language FROM session_cells c
                    JOIN events e ON e.id = c.event_id ORDER BY c.session_id, c.seq""")
for sid, eid, code, lang in rows:
    if sid != cur:
        if cur is not None:
            out.write(json.dumps({"session_id": cur, "cells": cells}) + "\n")
        cur, cells = sid, []
    code = code or ""
    n += 1
    nbytes += len(code.encode())
    cells.append({"id": str(eid), "code": code, "language": lang})
if cur is not None:
    out.write(json.dumps({"session_id": cur, "cells": cells}) + "\n")
print(f"corpus: {n} cells, {nbytes / 1e6:.1f} MB of code", file=sys.stderr)
with open(out_path + ".stats", "w") as f:
    f.write(f"{n} {nbytes}\n")
PY
read -r CELLS BYTES < "$DATA/sessions.jsonl.stats"
row() { # label seconds rss_kb
  awk -v l="$1" -v s="$2" -v r="$3" -v n="$CELLS" -v b="$BYTES" \
    'BEGIN { printf "| %s | %.2f s | %.0f | %.1f | %.0f MB |\n", l, s, n/s, b/s/1e6, r/1024 }'
}
echo "machine: $(nproc) cores; $(date -u +%Y-%m-%d)"
echo "| run | wall | cells/s | MB of code/s | peak RSS |"
echo "|---|---|---|---|---|"
# `analyze` exits 1 when it finds something (the varied corpus has findings); anything else is a failure.
findings_ok() { local rc=0; "$@" || rc=$?; [ "$rc" -le 1 ] || { echo "failed ($rc): $*" >&2; exit "$rc"; }; }
for i in 1 2; do
  findings_ok /usr/bin/time -f "%e %M" -o "$DATA/time.txt" target/release/nbtrail analyze --jsonl < "$DATA/sessions.jsonl" > "$DATA/analyze.out"
  read -r s r < <(tail -1 "$DATA/time.txt"); row "analyze --jsonl, run $i" "$s" "$r"
done
echo
echo "sessions with findings (--jsonl): $(grep -c '"findings":\[{' "$DATA/analyze.out" || true)"
findings_ok /usr/bin/time -f "%e %M" -o "$DATA/time.txt" target/release/nbtrail analyze --case "$CASE" --json > "$DATA/analyze.out"
read -r s r < <(tail -1 "$DATA/time.txt"); row "analyze --case" "$s" "$r"
echo "findings stored: $(python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(v.get("findings", v) if isinstance(v, dict) else len(v))' "$DATA/analyze.out" 2>/dev/null || echo '?')"
