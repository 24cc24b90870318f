"""nbtrail's organisation-wide job on Spark.

Reads ``system.access.audit`` (a table, a Delta/Parquet path, or a JSON-lines/CSV export), sessionizes
notebook commands with the desktop's rules, runs the analyzer on the executors (``nbtrail analyze --jsonl``
over ``RDD.pipe``), and writes sessions, cells and findings as tables (Parquet, or catalog tables) plus SARIF.

Sessionization is the desktop's (``crates/store/src/sessions.rs``), expressed with DataFrame window
functions so it runs distributed, one (notebook, cluster) partition at a time:

* rows are ``notebook.attachNotebook``, ``notebook.runCommand`` (and ``jobs.runCommand``) and
  ``notebook.detachNotebook`` carrying a ``notebookId``; a group is (notebook id, cluster id);
* within a group rows are ordered by (finish time, attach < command < detach, command id numerically,
  natural key);
* a session starts at an attach, or at a command when no session is open (first row, or after a detach),
  or when the command starts more than the idle gap after the group's last activity; a detach closes the
  open session; a detach with none open is ignored;
* a session id is SHA-256 over (notebook id, cluster id, natural key of its first row), first 6 bytes in
  hex: the desktop computes the same id, so a case cut from this job's output has the same session ids;
* the unit of analysis is the interpreter's lifetime: sessions of one group split only by the idle gap
  (the next one starts without an attach) are one program; each finding belongs to the session of the cell
  it is reported at.

Every input row is accounted for: ``counts.json`` holds rows read, duplicates dropped (same natural key),
rows with no parseable time (kept in ``rejected/``), notebook rows, sessions, cells, units and findings; a
line the analyzer could not read fails the job (nothing is dropped silently).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import struct
import sys
import time
from typing import Iterable

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

DEFAULT_IDLE_GAP_MS = 2 * 60 * 60 * 1000
STR_MAP = T.MapType(T.StringType(), T.StringType())

#: The system table's columns as an explicit schema for JSON exports (struct columns may also arrive as
#: JSON text, as ``df.write.csv`` and some Parquet writers leave them).
AUDIT_SCHEMA = T.StructType(
    [
        T.StructField("account_id", T.StringType()),
        T.StructField("workspace_id", T.StringType()),
        T.StructField("version", T.StringType()),
        T.StructField("event_time", T.StringType()),
        T.StructField("event_date", T.StringType()),
        T.StructField("source_ip_address", T.StringType()),
        T.StructField("user_agent", T.StringType()),
        T.StructField("session_id", T.StringType()),
        T.StructField("user_identity", T.StructType([T.StructField("email", T.StringType())])),
        T.StructField("service_name", T.StringType()),
        T.StructField("action_name", T.StringType()),
        T.StructField("request_id", T.StringType()),
        T.StructField("request_params", STR_MAP),
        T.StructField(
            "response",
            T.StructType(
                [
                    T.StructField("status_code", T.LongType()),
                    T.StructField("error_message", T.StringType()),
                ]
            ),
        ),
        T.StructField("audit_level", T.StringType()),
        T.StructField("event_id", T.StringType()),
    ]
)


#: Audit log delivery (S3/ADLS/GCS, camelCase, epoch-ms ``timestamp``) read with the system table's names.
DELIVERED_SCHEMA = T.StructType(
    [
        T.StructField("timestamp", T.LongType()),
        T.StructField("workspaceId", T.StringType()),
        T.StructField("sourceIPAddress", T.StringType()),
        T.StructField("userAgent", T.StringType()),
        T.StructField("sessionId", T.StringType()),
        T.StructField("userIdentity", T.StructType([T.StructField("email", T.StringType())])),
        T.StructField("serviceName", T.StringType()),
        T.StructField("actionName", T.StringType()),
        T.StructField("requestId", T.StringType()),
        T.StructField("requestParams", STR_MAP),
        T.StructField(
            "response",
            T.StructType(
                [
                    T.StructField("statusCode", T.LongType()),
                    T.StructField("errorMessage", T.StringType()),
                ]
            ),
        ),
        T.StructField("auditLevel", T.StringType()),
        T.StructField("version", T.StringType()),
    ]
)
DELIVERED_NAMES = {
    "timestamp": "event_time",
    "workspaceId": "workspace_id",
    "sourceIPAddress": "source_ip_address",
    "userAgent": "user_agent",
    "sessionId": "session_id",
    "userIdentity": "user_identity",
    "serviceName": "service_name",
    "actionName": "action_name",
    "requestId": "request_id",
    "requestParams": "request_params",
}
FORMATS = ("table", "delta", "parquet", "json", "csv", "delivered")


# ---- natural keys and cell languages: the desktop's, in Python -----------------------------------------


def natural_key(request_id, time_ms, service, action, params) -> str:
    """``nbtrail_model::NaturalKey``: SHA-256 over length-prefixed (request id, time ms as i64 LE, service,
    action, then each parameter key and value in key order), first 16 bytes, hex. ``None`` without a time
    (the row is rejected, not keyed)."""
    if time_ms is None:
        return None
    h = hashlib.sha256()

    def part(b: bytes) -> None:
        h.update(struct.pack("<Q", len(b)))
        h.update(b)

    part((request_id or "").encode())
    part(struct.pack("<q", int(time_ms)))
    part((service or "").encode())
    part((action or "").encode())
    for k in sorted((params or {}).keys(), key=lambda s: s.encode()):
        v = params[k]
        if v is None:
            continue
        part(k.encode())
        part(v.encode())
    return h.hexdigest()[:32]


def session_id(notebook_id: str, cluster_id: str | None, first_key_hex: str) -> str:
    """``sessions::sessionize``'s id: SHA-256 over length-prefixed (notebook, cluster or "", natural key)."""
    h = hashlib.sha256()
    for b in (notebook_id.encode(), (cluster_id or "").encode(), bytes.fromhex(first_key_hex)):
        h.update(struct.pack("<Q", len(b)))
        h.update(b)
    return h.hexdigest()[:12]


_MAGIC = {
    "sql": "sql",
    "python": "python",
    "py": "python",
    "pip": "python",
    "run": "python",
    "scala": "scala",
    "r": "r",
    "md": "markdown",
    "sh": "sh",
    "fs": "fs",
}


def cell_language(text: str | None, logged: str | None) -> str | None:
    """``nbtrail_ingest::normalize::cell_language``: a leading magic wins, then the logged language."""
    if text:
        stripped = text.lstrip()
        first = stripped.split("\n", 1)[0].rstrip("\r") if stripped else ""
        if first.startswith("%"):
            name = re.split(r"\s", first[1:].lstrip("%"), maxsplit=1)[0]
            if name in _MAGIC:
                return _MAGIC[name]
    return logged.lower() if logged else None


# ---- reading -----------------------------------------------------------------------------------------


def read_audit(spark: SparkSession, source: str, fmt: str) -> DataFrame:
    """The audit rows of a table name (``fmt='table'``) or a path (delta, parquet, json, csv)."""
    if fmt == "table":
        return spark.table(source)
    if fmt == "json":
        return spark.read.schema(AUDIT_SCHEMA).option("recursiveFileLookup", True).json(source)
    if fmt == "delivered":
        # Partition folders (workspaceId=…/date=…) repeat record fields: read files, not partitions.
        return spark.read.schema(DELIVERED_SCHEMA).option("recursiveFileLookup", True).json(source)
    if fmt == "csv":
        return (
            spark.read.option("header", True)
            .option("multiLine", True)
            .option("escape", '"')
            .csv(source)
        )
    return spark.read.format(fmt).load(source)


def _as_map(df: DataFrame, name: str):
    dt = df.schema[name].dataType if name in df.columns else None
    if dt is None:
        return F.lit(None).cast(STR_MAP)
    if isinstance(dt, T.MapType):
        return F.col(name).cast(STR_MAP)
    if isinstance(dt, T.StructType):
        return F.from_json(F.to_json(F.col(name)), STR_MAP)
    return F.from_json(F.col(name), STR_MAP)


def _field(df: DataFrame, name: str, field: str, cast=T.StringType()):
    """``name.field`` whether ``name`` is a struct, a map or JSON text."""
    dt = df.schema[name].dataType if name in df.columns else None
    if dt is None:
        return F.lit(None).cast(cast)
    if isinstance(dt, (T.StructType, T.MapType)):
        return F.col(name)[field].cast(cast)
    return F.get_json_object(F.col(name), f"$.{field}").cast(cast)


def normalize(df: DataFrame) -> DataFrame:
    """One row per audit record with the fields sessionization and analysis need, plus the record as JSON
    (``raw``) for provenance and for cutting a desktop case."""
    df = df.withColumn("__raw", F.to_json(F.struct(*[F.col(c) for c in df.columns])))
    if "serviceName" in df.columns:
        df = df.select(*[F.col(c).alias(DELIVERED_NAMES.get(c, c)) for c in df.columns])
    params = F.map_filter(_as_map(df, "request_params"), lambda k, v: v.isNotNull())
    t = df.schema["event_time"].dataType
    if isinstance(t, T.TimestampType):
        ts = F.col("event_time")
    elif isinstance(t, (T.LongType, T.IntegerType)):
        ts = F.timestamp_millis(F.col("event_time"))
    else:
        ts = F.to_timestamp(F.col("event_time"))
    out = df.select(
        F.unix_millis(ts).alias("time_ms"),
        F.col("service_name").cast("string").alias("service"),
        F.col("action_name").cast("string").alias("action"),
        F.col("request_id").cast("string").alias("request_id"),
        _field(df, "user_identity", "email").alias("user"),
        F.col("workspace_id").cast("string").alias("workspace_id"),
        params.alias("params"),
        F.col("__raw").alias("raw"),
    )
    nk = F.udf(natural_key, T.StringType())
    p = lambda k: F.when(F.col("params")[k] != "", F.col("params")[k])  # noqa: E731 (empty = absent)
    secs = F.col("params")["executionTime"].cast("double")
    return out.select(
        "*",
        nk("request_id", "time_ms", "service", "action", "params").alias("natural_key"),
        p("notebookId").alias("notebook_id"),
        F.coalesce(p("clusterId"), p("warehouseId")).alias("cluster_id"),
        p("commandId").alias("command_id"),
        p("commandText").alias("command_text"),
        p("commandLanguage").alias("command_language"),
        F.when(
            secs.isNotNull() & ~F.isnan(secs) & (secs >= 0) & (secs < 1e12),
            F.round(secs * 1000).cast("long"),
        ).alias("duration_ms"),
    )


# ---- sessionization ----------------------------------------------------------------------------------


def sessionize(
    events: DataFrame, idle_gap_ms: int = DEFAULT_IDLE_GAP_MS
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(sessions, cells, session rows) of the notebook rows of ``events`` (deduplicated, normalized). The
    session rows are every attach, command and detach of each session with its record (``raw``) and
    source: what a desktop case is cut from."""
    trail_end = events.agg(F.max("time_ms")).first()[0] or 0
    kind = (
        F.when(F.col("action") == "attachNotebook", F.lit(0))
        .when(F.col("action") == "runCommand", F.lit(1))
        .when(F.col("action") == "detachNotebook", F.lit(2))
    )
    rows = events.where(
        F.col("notebook_id").isNotNull()
        & (
            ((F.col("action") == "runCommand") & F.col("service").isin("notebook", "jobs"))
            | (F.col("action").isin("attachNotebook", "detachNotebook") & (F.col("service") == "notebook"))
        )
    ).select(
        "*",
        kind.alias("kind"),
        F.coalesce(F.col("cluster_id"), F.lit("")).alias("cluster_key"),
        F.col("command_id").cast(T.DecimalType(38, 0)).alias("command_num"),
    )
    group = ["notebook_id", "cluster_key"]
    order = [
        "time_ms",
        "kind",
        F.col("command_id").isNotNull(),
        "command_num",
        "command_id",
        "natural_key",
    ]
    w = Window.partitionBy(*group).orderBy(*order)
    before = w.rowsBetween(Window.unboundedPreceding, -1)
    start_ms = F.col("time_ms") - F.greatest(F.coalesce(F.col("duration_ms"), F.lit(0)), F.lit(0))
    rows = rows.select(
        "*",
        F.lag("kind").over(w).alias("prev_kind"),
        F.max(F.when(F.col("kind") != 2, F.col("time_ms"))).over(before).alias("last_activity"),
        start_ms.alias("start_ms"),
    )
    none_open = F.col("prev_kind").isNull() | (F.col("prev_kind") == 2)
    is_new = (F.col("kind") == 0) | (
        (F.col("kind") == 1) & (none_open | ((F.col("start_ms") - F.col("last_activity")) > idle_gap_ms))
    )
    rows = rows.select(
        "*",
        is_new.alias("is_new"),
        ((F.col("kind") == 2) & none_open).alias("orphan"),
        # A detach idle for longer than the gap ends the session as idle (its user is not counted).
        ((F.col("kind") == 2) & ((F.col("time_ms") - F.col("last_activity")) > idle_gap_ms)).alias("idle_detach"),
    )
    rows = rows.select(
        "*", F.sum(F.col("is_new").cast("int")).over(w.rowsBetween(Window.unboundedPreceding, 0)).alias("session_no")
    ).where(~F.col("orphan") & (F.col("session_no") > 0))
    rows = rows.cache()

    sid = F.udf(session_id, T.StringType())
    first = rows.where("is_new").select(
        *group,
        "session_no",
        sid("notebook_id", "cluster_id", "natural_key").alias("session_id"),
        (F.col("kind") == 0).alias("attached"),
        F.when(F.col("kind") == 0, F.col("time_ms")).otherwise(F.col("start_ms")).alias("start_ms"),
    )
    agg = rows.groupBy(*group, "session_no").agg(
        F.first("cluster_id", ignorenulls=True).alias("cluster_id"),
        F.max(F.when(F.col("kind") != 2, F.col("time_ms"))).alias("last_activity_end"),
        F.max(F.when(~F.col("idle_detach"), F.col("time_ms"))).alias("end_ms"),
        F.max(F.when(F.col("kind") == 2, F.lit(True))).alias("detached"),
        F.max(F.when(F.col("kind") == 2, F.col("idle_detach"))).alias("detach_idle"),
        F.sum((F.col("kind") == 1).cast("int")).alias("cells"),
        F.array_sort(
            F.array_distinct(F.collect_list(F.when(~F.col("idle_detach"), F.col("user"))))
        ).alias("users"),
    )
    sw = Window.partitionBy(*group).orderBy("session_no")
    sessions = first.join(agg, [*group, "session_no"]).select(
        "*", F.lead("attached").over(sw).alias("next_attached")
    )
    end_reason = (
        F.when(F.col("detached") & F.col("detach_idle"), "idle")
        .when(F.col("detached"), "detach")
        .when(F.col("next_attached") == True, "reattach")  # noqa: E712 (a Column)
        .when(F.col("next_attached") == False, "idle")  # noqa: E712
        .when(F.lit(trail_end) - F.col("last_activity_end") > idle_gap_ms, "idle")
        .otherwise("open")
    )
    sessions = sessions.select("*", end_reason.alias("end_reason")).select(
        "*",
        F.lag("end_reason").over(sw).alias("prev_end"),
    )
    # The interpreter's lifetime: sessions split only by the idle gap (no attach, a cluster) are one unit.
    joins_prev = (
        (F.col("prev_end") == "idle") & ~F.col("attached") & (F.col("cluster_key") != "")
    )
    sessions = sessions.select(
        "*",
        F.sum(F.when(joins_prev, 0).otherwise(1)).over(sw.rowsBetween(Window.unboundedPreceding, 0)).alias("unit_no"),
    )
    uw = Window.partitionBy(*group, "unit_no").orderBy("session_no")
    sessions = sessions.select(
        "*", F.first("session_id").over(uw.rowsBetween(Window.unboundedPreceding, 0)).alias("unit_id")
    ).select(
        "session_id",
        "unit_id",
        "notebook_id",
        "cluster_id",
        "users",
        "start_ms",
        F.coalesce("end_ms", "start_ms").alias("end_ms"),
        "cells",
        "attached",
        "end_reason",
        "session_no",
        "cluster_key",
    )
    lang = F.udf(cell_language, T.StringType())
    cw = Window.partitionBy(*group, "session_no").orderBy(*order)
    cells = (
        rows.where(F.col("kind") == 1)
        .select(
            *group,
            "session_no",
            F.row_number().over(cw).alias("seq"),
            F.col("natural_key").alias("cell_key"),
            "cluster_id",
            "time_ms",
            "command_id",
            "user",
            F.coalesce("command_text", F.lit("")).alias("code"),
            lang("command_text", "command_language").alias("language"),
            "raw",
        )
        .join(sessions.select(*group, "session_no", "session_id", "unit_id"), [*group, "session_no"])
        .drop("cluster_key")
    )
    session_rows = rows.join(
        sessions.select(*group, "session_no", "session_id", "unit_id"), [*group, "session_no"]
    ).select("session_id", "unit_id", "natural_key", "time_ms", "action", "source", "raw")
    return sessions.drop("cluster_key"), cells, session_rows


# ---- analysis on the executors -----------------------------------------------------------------------


def analyze(cells: DataFrame, nbtrail: str, rules: str | None = None) -> tuple[DataFrame, int]:
    """Findings of every interpreter lifetime, by ``nbtrail analyze --jsonl`` over ``RDD.pipe`` on the
    executors (``nbtrail`` must be a path that exists on every executor: a Volume, DBFS fuse or init-script
    install). One JSON line per unit in, one out; a unit the analyzer rejects fails the job."""
    units = (
        cells.groupBy("unit_id")
        .agg(
            F.sort_array(
                F.collect_list(F.struct("session_no", "seq", "cell_key", "code", "language"))
            ).alias("cells")
        )
        .select(
            F.to_json(
                F.struct(
                    F.col("unit_id").alias("session_id"),
                    F.transform(
                        "cells",
                        lambda c: F.struct(
                            c["cell_key"].alias("id"), c["code"].alias("code"), c["language"].alias("language")
                        ),
                    ).alias("cells"),
                )
            ).alias("line")
        )
    )
    cmd = [nbtrail, "analyze", "--jsonl"]
    if rules:
        cmd += ["--rules", rules]
    n_units = units.count()
    # The analyzer exits 1 when it finds something, so the exit code is not the check: every unit line
    # must come back as exactly one line (a crash would return fewer), and none may be an error line.
    lines = units.rdd.map(lambda r: r.line).pipe(" ".join(_quote(c) for c in cmd), checkCode=False).cache()
    n_out = lines.count()
    if n_out != n_units:
        raise RuntimeError(f"nbtrail analyze --jsonl answered {n_out} line(s) for {n_units} unit(s)")
    spark = cells.sparkSession

    def parse(line: str) -> Iterable[tuple]:
        out = json.loads(line)
        if "error" in out:
            raise RuntimeError(f"nbtrail analyze --jsonl rejected unit line {out.get('line')}: {out['error']}")
        for f in out["findings"]:
            loc = f["location"]
            yield (
                out["session_id"],
                loc["cell_id"],
                f["code"],
                f["rule"],
                f["severity"],
                f["message"],
                int(loc["line"]),
                int(loc["col"]),
                int(loc["end_line"]),
                int(loc["end_col"]),
                json.dumps(f.get("trace", []), separators=(",", ":")),
            )

    schema = T.StructType(
        [
            T.StructField("unit_id", T.StringType()),
            T.StructField("cell_key", T.StringType()),
            T.StructField("code", T.StringType()),
            T.StructField("rule", T.StringType()),
            T.StructField("severity", T.StringType()),
            T.StructField("message", T.StringType()),
            T.StructField("line", T.IntegerType()),
            T.StructField("col", T.IntegerType()),
            T.StructField("end_line", T.IntegerType()),
            T.StructField("end_col", T.IntegerType()),
            T.StructField("trace", T.StringType()),
        ]
    )
    found = spark.createDataFrame(lines.flatMap(parse), schema)
    # Each finding belongs to the session of the cell it is reported at.
    return (
        found.join(
            cells.select("cell_key", "session_id", "seq", "notebook_id", "cluster_id", "user", "time_ms"),
            "cell_key",
        ),
        n_units,
    )


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'" if re.search(r"[^\w@%+=:,./-]", s) else s


# ---- outputs -----------------------------------------------------------------------------------------


def sarif(findings: list[dict]) -> dict:
    """SARIF 2.1.0 of the job's findings (one run; locations name the session and cell)."""
    rules = {}
    results = []
    for f in findings:
        rules.setdefault(f["code"], {"id": f["code"], "name": f["rule"]})
        results.append(
            {
                "ruleId": f["code"],
                "level": {"high": "error", "medium": "warning"}.get(f["severity"], "note"),
                "message": {"text": f["message"]},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": f"nbtrail-session:{f['session_id']}/cell/{f['seq']}"},
                            "region": {
                                "startLine": f["line"],
                                "startColumn": f["col"],
                                "endLine": f["end_line"],
                                "endColumn": f["end_col"],
                            },
                        }
                    }
                ],
                "partialFingerprints": {"nbtrailCell": f["cell_key"]},
            }
        )
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "nbtrail-spark", "rules": sorted(rules.values(), key=lambda r: r["id"])}},
                "results": results,
            }
        ],
    }


def read_sources(spark: SparkSession, sources: list[str]) -> DataFrame:
    """Normalized rows of every ``FORMAT:PATH`` (or ``table:NAME``) source, with the source named."""
    frames = []
    for src in sources:
        fmt, _, where = src.partition(":")
        if fmt not in FORMATS or not where:
            raise ValueError(f"{src!r}: a source is FORMAT:PATH ({', '.join(FORMATS[1:])}) or table:NAME")
        frames.append(normalize(read_audit(spark, where, fmt)).withColumn("source", F.lit(src)))
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f)
    return out


def ship_package(spark: SparkSession) -> None:
    """Makes this package importable on the executors (its UDFs are pickled by reference): zips it and
    adds it with ``addPyFile``. Harmless where the package is installed on the cluster already."""
    import tempfile
    import zipfile

    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(tempfile.mkdtemp(prefix="nbtrail-spark-"), "nbtrail_spark.zip")
    with zipfile.ZipFile(path, "w") as z:
        for name in sorted(os.listdir(here)):
            if name.endswith(".py"):
                z.write(os.path.join(here, name), os.path.join("nbtrail_spark", name))
    spark.sparkContext.addPyFile(path)


def run(
    spark: SparkSession,
    sources: list[str],
    out: str,
    nbtrail: str,
    idle_gap_ms: int = DEFAULT_IDLE_GAP_MS,
    save_as_table: str | None = None,
) -> dict:
    """The whole job; returns the counts it also writes to ``out/counts.json``."""
    t0 = time.time()
    ship_package(spark)
    events = read_sources(spark, sources).cache()
    read = events.count()
    # What the desktop rejects too: no time, no service or no action (a malformed line reads as nulls).
    valid = (
        F.col("time_ms").isNotNull()
        & F.coalesce(F.col("service") != "", F.lit(False))
        & F.coalesce(F.col("action") != "", F.lit(False))
    )
    rejected = events.where(~valid)
    n_rejected = rejected.count()
    if n_rejected:
        rejected.select("source", "raw").write.mode("overwrite").json(os.path.join(out, "rejected"))
    good = events.where(valid).dropDuplicates(["natural_key"])
    unique = good.count()
    sessions, cells, session_rows = sessionize(good, idle_gap_ms)
    sessions, cells = sessions.cache(), cells.cache()
    findings, n_units = analyze(cells, nbtrail)
    findings = findings.cache()
    tables = {"sessions": sessions, "cells": cells, "findings": findings, "session_rows": session_rows}
    for name, df in tables.items():
        if save_as_table:
            df.write.mode("overwrite").saveAsTable(f"{save_as_table}{name}")
        df.write.mode("overwrite").parquet(os.path.join(out, name))
    rows = [r.asDict() for r in findings.orderBy("session_id", "seq", "line", "col", "code").collect()]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "findings.sarif"), "w") as fh:
        json.dump(sarif(rows), fh, indent=1)
    counts = {
        "sources": sources,
        "rows_read": read,
        "rejected": n_rejected,
        "duplicates": read - n_rejected - unique,
        "events": unique,
        "sessions": sessions.count(),
        "units": n_units,
        "cells": cells.count(),
        "findings": len(rows),
        "idle_gap_ms": idle_gap_ms,
        "seconds": round(time.time() - t0, 2),
    }
    with open(os.path.join(out, "counts.json"), "w") as fh:
        json.dump(counts, fh, indent=1)
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="nbtrail-spark", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "sources",
        nargs="+",
        help="audit rows as FORMAT:PATH (delta, parquet, json, csv: system.access.audit exports; delivered: "
        "audit log delivery JSON, .gz too) or table:NAME (e.g. table:system.access.audit)",
    )
    ap.add_argument("--out", required=True, help="directory for sessions/, cells/, findings/ (Parquet), SARIF, counts")
    ap.add_argument("--nbtrail", required=True, help="path of the nbtrail binary on every executor")
    ap.add_argument("--idle-gap-minutes", type=int, default=DEFAULT_IDLE_GAP_MS // 60000)
    ap.add_argument("--save-as-table", metavar="PREFIX", help="also save catalog tables PREFIXsessions, …")
    ap.add_argument("--master", help="Spark master (default: what spark-submit or Databricks gives)")
    a = ap.parse_args(argv)
    b = SparkSession.builder.appName("nbtrail").config("spark.sql.session.timeZone", "UTC")
    if a.master:
        # A local run: no UI, no progress bars, few shuffle partitions (the data fit one machine).
        b = (
            b.master(a.master)
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "8")
            .config("spark.sql.execution.pythonUDF.arrow.enabled", "false")
        )
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    counts = run(spark, a.sources, a.out, a.nbtrail, a.idle_gap_minutes * 60000, a.save_as_table)
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
