#!/usr/bin/env bash
# Desktop-app benchmarks in a real window under Xvfb (see BENCHMARKS.md): launch → first results on a
# 1M-event case (bench-data/bench.case, made by scripts/bench-search.sh) against the sample case, and frame
# times scrolling a 100k-hit list and a 5,000-cell replay against short ones. Release build.
set -euo pipefail
cd "$(dirname "$0")/.."
BIG=${1:-bench-data/bench.case}
[ -f "$BIG/case.sqlite" ] || { echo "no $BIG: run scripts/bench-search.sh first (it builds the 1M case)" >&2; exit 1; }
(cd ui && node_modules/.bin/vite build >/dev/null)
cargo build --release --locked -q -p nbtrail --bin nbtrail -p nbtrail-app --bin nbtrail-app
NB=target/release/nbtrail
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
$NB ingest -q --case "$work/sample.case" sample-logs >/dev/null
$NB analyze --case "$work/sample.case" >/dev/null || true
# One notebook session of 5,000 cells, and one of 20 (same generator) as the baseline.
for n in 20 5000; do
  mkdir -p "$work/long$n"
  python3 - "$work/long$n/log.json" "$n" <<'PY'
import json, sys
n = int(sys.argv[2])
base = {"accountId": "a1", "auditLevel": "WORKSPACE_LEVEL", "serviceName": "notebook", "sessionId": "s-long",
        "shardName": "x", "sourceIPAddress": "10.0.0.9", "userAgent": "ua", "version": "2.0", "workspaceId": 42,
        "orgId": "42", "date": "2024-06-01", "userIdentity": {"email": "long@example.com"},
        "response": {"errorMessage": None, "result": None, "statusCode": 200}}
t = 1717200000000
with open(sys.argv[1], "w") as f:
    f.write(json.dumps(dict(base, actionName="attachNotebook", requestId="r0", timestamp=t,
            requestParams={"clusterId": "c1", "notebookId": "77", "path": "/Users/long@example.com/long"})) + "\n")
    for i in range(n):
        code = "\n".join([f"df_{i} = spark.table('prod.sales.orders').where('amount > {i}')",
                          f"agg_{i} = df_{i}.groupBy('customer_id').sum('amount')",
                          f"display(agg_{i}.limit({i % 50 + 1}))"][: 1 + i % 3])
        f.write(json.dumps(dict(base, actionName="runCommand", requestId=f"r{i+1}", timestamp=t + 1000 + i * 1000,
                requestParams={"clusterId": "c1", "notebookId": "77", "commandId": str(1000 + i),
                               "commandLanguage": "python", "commandText": code, "status": "finished",
                               "executionTime": "0.2"})) + "\n")
PY
  $NB ingest -q --case "$work/long$n.case" "$work/long$n" >/dev/null
done
export NBTRAIL_APP="$PWD/target/release/nbtrail-app" NBTRAIL_SAMPLE_CASE="$work/sample.case" NBTRAIL_BIG_CASE="$PWD/$BIG" \
  NBTRAIL_SAMPLE_SESSION_CASE="$work/long20.case" NBTRAIL_LONG_CASE="$work/long5000.case" NBTRAIL_CONFIG_DIR="$work/config"
bash tests/e2e/with-driver.sh node tests/e2e/bench.mjs
