#!/usr/bin/env python3
"""Side-by-side run of nbtrail's analyzer and Pysa (pyre-check) on the same notebook sessions.

Usage: pysa_compare.py CASE_DIR WORK_DIR NBTRAIL_BIN PYRE_VENV

Exports every session of the case twice: as JSON lines for `nbtrail analyze --jsonl`, and as one Python
file per session for Pysa (cells concatenated in execution order, IPython magics commented out, a stub
module standing in for the Databricks globals). Pysa gets models for the same sources and sinks as the
nbtrail rules compared here (secrets and widgets and tables; print/display, requests, spark.sql, to_csv).
Both are timed (wall clock) and their findings compared per (session, cell, rule class).
"""
import json, os, re, sqlite3, subprocess, sys, time

case, work, nbtrail, venv = sys.argv[1:5]
src = os.path.join(work, "src")
models = os.path.join(work, "models")
os.makedirs(src, exist_ok=True)
os.makedirs(models, exist_ok=True)

STUBS = '''from typing import Any
class _Secrets:
    def get(self, scope: str, key: str) -> str: ...
class _Widgets:
    def get(self, name: str) -> str: ...
    def text(self, name: str, default: str, label: str = ...) -> None: ...
class _Fs:
    def __getattr__(self, name: str) -> Any: ...
class _Notebook:
    def run(self, path: str, timeout: int, arguments: Any = ...) -> str: ...
class _DBUtils:
    secrets: _Secrets
    widgets: _Widgets
    fs: _Fs
    notebook: _Notebook
class PandasFrame:
    def to_csv(self, path: str, **kw: Any) -> None: ...
    def __getattr__(self, name: str) -> Any: ...
class DataFrame:
    def toPandas(self) -> PandasFrame: ...
    def limit(self, n: int) -> "DataFrame": ...
    def __getattr__(self, name: str) -> Any: ...
class _Spark:
    def table(self, name: str) -> DataFrame: ...
    def sql(self, q: str) -> DataFrame: ...
    def __getattr__(self, name: str) -> Any: ...
dbutils: _DBUtils
spark: _Spark
def display(x: Any) -> None: ...
'''
MODELS = '''def databricks_stubs._Secrets.get(self, scope, key) -> TaintSource[UserSecrets]: ...
def databricks_stubs._Widgets.get(self, name) -> TaintSource[UserControlled]: ...
def databricks_stubs._Spark.table(self, name) -> TaintSource[TableData]: ...
def print(*values: TaintSink[ReturnedToUser], sep = ..., end = ..., file = ..., flush = ...): ...
def databricks_stubs.display(x: TaintSink[ReturnedToUser]): ...
def databricks_stubs._Spark.sql(self, q: TaintSink[SQL]): ...
def databricks_stubs.PandasFrame.to_csv(self: TaintSink[LocalExport], path, **kw): ...
def requests.api.post(url: TaintSink[RequestSend], data: TaintSink[RequestSend] = ..., json: TaintSink[RequestSend] = ..., params: TaintSink[RequestSend] = ..., headers: TaintSink[RequestSend] = ..., cookies = ..., files = ..., auth = ..., timeout = ..., allow_redirects = ..., proxies = ..., hooks = ..., stream = ..., verify = ..., cert = ...): ...
def requests.api.get(url: TaintSink[RequestSend], params: TaintSink[RequestSend] = ..., data: TaintSink[RequestSend] = ..., headers: TaintSink[RequestSend] = ..., cookies = ..., files = ..., auth = ..., timeout = ..., allow_redirects = ..., proxies = ..., hooks = ..., stream = ..., verify = ..., cert = ..., json: TaintSink[RequestSend] = ...): ...
'''
CONFIG = {
    "sources": [{"name": n, "comment": n} for n in ["UserSecrets", "UserControlled", "TableData"]],
    "sinks": [{"name": n, "comment": n} for n in ["ReturnedToUser", "RequestSend", "SQL", "LocalExport"]],
    "features": [],
    "rules": [
        {"name": "secret-leak", "code": 1138, "sources": ["UserSecrets"], "sinks": ["ReturnedToUser", "RequestSend", "SQL", "LocalExport"], "message_format": "[{$sources}] to [{$sinks}]"},
        {"name": "sql-injection", "code": 5005, "sources": ["UserControlled"], "sinks": ["SQL"], "message_format": "[{$sources}] to [{$sinks}]"},
        {"name": "exfiltration", "code": 5007, "sources": ["TableData"], "sinks": ["LocalExport", "RequestSend"], "message_format": "[{$sources}] to [{$sinks}]"},
    ],
}
# nbtrail code -> rule class shared with the Pysa codes above (other nbtrail rules have no Pysa twin here)
NBT = {"NBT001": "secret-leak", "NBT005": "sql-injection", "NBT007": "exfiltration"}
PYSA = {1138: "secret-leak", 5005: "sql-injection", 5007: "exfiltration"}

with open(os.path.join(src, "databricks_stubs.pyi"), "w") as f:
    f.write(STUBS)
with open(os.path.join(models, "notebook.pysa"), "w") as f:
    f.write(MODELS)
with open(os.path.join(models, "taint.config"), "w") as f:
    json.dump(CONFIG, f)
with open(os.path.join(work, ".pyre_configuration"), "w") as f:
    json.dump({"source_directories": ["src"], "taint_models_path": ["models"],
               "typeshed": os.path.join(venv, "lib", "pyre_check", "typeshed")}, f)

db = sqlite3.connect(os.path.join(case, "case.sqlite"))
sessions = {}
for sid, seq, eid, code, lang in db.execute(
        "SELECT c.session_id, c.seq, e.id, e.command_text, e.language FROM session_cells c "
        "JOIN events e ON e.id = c.event_id ORDER BY c.session_id, c.seq"):
    sessions.setdefault(sid, []).append((seq, eid, code or "", lang))

# Sessions that separate precise from imprecise analyses: scalars about a secret are not the secret, a
# re-assigned name no longer holds it; one true leak as a control.
SECRET = 'tok = dbutils.secrets.get(scope="prod", key="api")'
TRAPS = {
    "trap-len": [SECRET, "print(len(tok))"],
    "trap-hash": [SECRET, "import hashlib\nprint(hashlib.sha256(tok.encode()).hexdigest())"],
    "trap-compare": [SECRET, "print(tok == 'expected')"],
    "trap-redefined": [SECRET, "tok = 'masked'\nprint(tok)"],
    "control-leak": [SECRET, "print(f'token: {tok}')"],
}
for i, (sid, codes) in enumerate(TRAPS.items()):
    sessions[sid] = [(j + 1, 9_000_000 + 10 * i + j, c, "python") for j, c in enumerate(codes)]

jsonl = os.path.join(work, "sessions.jsonl")
line_map = {}  # (file, line) -> (session, event id)
with open(jsonl, "w") as out:
    for sid, cells in sessions.items():
        out.write(json.dumps({"session_id": sid, "cells": [{"id": str(e), "code": c, "language": l} for _, e, c, l in cells]}) + "\n")
        fname = f"s_{sid}.py"
        lines = ["from databricks_stubs import dbutils, spark, display", "import requests"]
        for _, eid, code, lang in cells:
            first = code.lstrip().split("\n", 1)[0]
            if lang not in (None, "python") or re.match(r"%(sql|md|scala|r|sh|fs)\b", first):
                continue  # not Python: neither tool analyzes it
            lines.append(f"# cell {eid}")
            for l in code.split("\n"):
                if re.match(r"\s*[%!]", l):
                    l = "# " + l  # IPython escapes are not Python
                lines.append(l)
                line_map[(fname, len(lines))] = (sid, eid)
        with open(os.path.join(src, fname), "w") as f:
            f.write("\n".join(lines) + "\n")

t0 = time.monotonic()
nb = subprocess.run([nbtrail, "analyze", "--jsonl"], stdin=open(jsonl), capture_output=True, text=True, check=True)
t_nbtrail = time.monotonic() - t0
ours = set()
for line in nb.stdout.splitlines():
    r = json.loads(line)
    for f in r.get("findings", []):
        if f["code"] in NBT:
            ours.add((r["session_id"], int(f["location"]["cell_id"]), NBT[f["code"]]))

env = dict(os.environ, PATH=os.path.join(venv, "bin") + os.pathsep + os.environ["PATH"])
t0 = time.monotonic()
subprocess.run(["pyre", "--noninteractive", "analyze", "--save-results-to", os.path.join(work, "out")],
               cwd=work, env=env, capture_output=True, check=True)
t_pysa = time.monotonic() - t0
theirs = set()
for e in json.load(open(os.path.join(work, "out", "errors.json"))):
    key = line_map.get((os.path.basename(e["path"]), e["line"]))
    if key and e["code"] in PYSA:
        theirs.add((key[0], key[1], PYSA[e["code"]]))

cells = sum(len(c) for c in sessions.values())
print(json.dumps({
    "sessions": len(sessions), "cells": cells,
    "nbtrail_s": round(t_nbtrail, 3), "pysa_s": round(t_pysa, 2), "speedup": round(t_pysa / t_nbtrail, 1),
    "both": sorted(ours & theirs), "only_nbtrail": sorted(ours - theirs), "only_pysa": sorted(theirs - ours),
}, indent=1))
