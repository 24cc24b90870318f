#!/usr/bin/env bash
# Runs the desktop app's end-to-end test in a real window: builds the UI, the app and the CLI, makes the
# sample case and a hostile case, starts Xvfb and tauri-driver (WebKitWebDriver), runs app.mjs.
# Needs: the apt packages and tauri-driver that scripts/test.sh installs. Screenshots → target/e2e-screenshots/
# (`NBTRAIL_SHOTS=docs/screenshots bash tests/e2e/run.sh` refreshes the README's images; a test run no longer
# rewrites them).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_PROFILE_DEV_DEBUG=${CARGO_PROFILE_DEV_DEBUG:-0}
(cd ui && node_modules/.bin/vite build >/dev/null)
cargo build --locked -q --bin nbtrail -p nbtrail --bin nbtrail-app -p nbtrail-app
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
NB=target/debug/nbtrail
$NB ingest -q --case "$work/sample.case" sample-logs >/dev/null
$NB analyze --case "$work/sample.case" >/dev/null || [ $? -le 1 ]
# A case whose cells and notebook path carry markup and terminal escapes.
mkdir -p "$work/evil-logs"
python3 - "$work/evil-logs/evil.json" <<'PY'
import json, sys
base = {"accountId": "a1", "auditLevel": "WORKSPACE_LEVEL", "serviceName": "notebook", "sessionId": "s-evil",
        "shardName": "x", "sourceIPAddress": "10.0.0.9", "userAgent": "ua", "version": "2.0",
        "workspaceId": 42, "orgId": "42", "date": "2024-06-01",
        "userIdentity": {"email": "mallory@example.com"},
        "response": {"errorMessage": None, "result": None, "statusCode": 200}}
nb = "666"
path = "/Users/mallory@example.com/<img src=x onerror=\"window.__pwned = 3\">"
recs = [dict(base, actionName="attachNotebook", requestId="r0", timestamp=1717200000000,
             requestParams={"clusterId": "c1", "notebookId": nb, "path": path})]
codes = ['print("<script>window.__pwned = 1</script>")  # alert',
         'html = \'<img src=x onerror="window.__pwned = 2">\'\ndisplay(html)',
         'print("\x1b[31mred\x1b[0m")']
for i, c in enumerate(codes):
    recs.append(dict(base, actionName="runCommand", requestId=f"r{i+1}", timestamp=1717200001000 + i * 1000,
                     requestParams={"clusterId": "c1", "notebookId": nb, "commandId": str(100 + i),
                                    "commandLanguage": "python", "commandText": c, "status": "finished",
                                    "executionTime": "0.1"}))
with open(sys.argv[1], "w") as f:
    for r in recs:
        f.write(json.dumps(r) + "\n")
PY
$NB ingest -q --case "$work/evil.case" "$work/evil-logs" >/dev/null
$NB analyze --case "$work/evil.case" >/dev/null || [ $? -le 1 ]

export NBTRAIL_APP="$PWD/target/debug/nbtrail-app" NBTRAIL_SAMPLE_CASE="$work/sample.case" \
  NBTRAIL_EVIL_CASE="$work/evil.case" NBTRAIL_E2E_OUT="$work/evidence.zip" \
  NBTRAIL_CONFIG_DIR="$work/config"
bash tests/e2e/with-driver.sh node tests/e2e/app.mjs
