"""Cut a desktop case from the job's output.

Selects interpreter lifetimes (whole analysis units, so a trace that spans an idle gap stays whole) by user,
time range, and/or "has findings", then writes the audit records behind them — every attach, command and
detach of those sessions, verbatim as the job read them — to ``OUT/records/audit.jsonl``, and what was cut
from where to ``OUT/PROVENANCE.json`` (the job's sources and counts, the filter, the sessions, each record's
natural key and source, and the SHA-256 of the records file). ``nbtrail ingest --case CASE OUT/records``
then builds a desktop case whose session ids are the job's (both hash the same natural keys), and
``nbtrail analyze`` finds what the job found in them.

Usage::

    python -m nbtrail_spark.cut JOB_OUT --out DIR [--user EMAIL] [--from ISO] [--to ISO] [--with-findings]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def _ms(iso: str) -> int:
    t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp() * 1000)


def cut(
    spark: SparkSession,
    job_out: str,
    out: str,
    user: str | None = None,
    start: str | None = None,
    end: str | None = None,
    with_findings: bool = False,
) -> dict:
    """Writes the subset; returns the provenance record (also written to ``out/PROVENANCE.json``)."""
    sessions = spark.read.parquet(os.path.join(job_out, "sessions"))
    cells = spark.read.parquet(os.path.join(job_out, "cells"))
    findings = spark.read.parquet(os.path.join(job_out, "findings"))
    rows = spark.read.parquet(os.path.join(job_out, "session_rows"))
    pick = sessions
    if user:
        pick = pick.where(F.array_contains("users", user))
    if start:
        pick = pick.where(F.col("end_ms") >= _ms(start))
    if end:
        pick = pick.where(F.col("start_ms") <= _ms(end))
    if with_findings:
        pick = pick.join(findings.select("session_id").distinct(), "session_id")
    units = pick.select("unit_id").distinct()
    chosen = sessions.join(units, "unit_id")
    records = rows.join(chosen.select("session_id"), "session_id").orderBy("time_ms", "natural_key")
    picked = records.select("natural_key", "source", "session_id", "raw").collect()
    os.makedirs(os.path.join(out, "records"), exist_ok=True)
    path = os.path.join(out, "records", "audit.jsonl")
    h = hashlib.sha256()
    with open(path, "w", encoding="utf-8") as fh:
        for r in picked:
            line = r.raw + "\n"
            fh.write(line)
            h.update(line.encode())
    with open(os.path.join(job_out, "counts.json")) as fh:
        job = json.load(fh)
    ids = sorted(r.session_id for r in chosen.select("session_id").collect())
    prov = {
        "cut_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "job_output": os.path.abspath(job_out),
        "job": job,
        "filter": {"user": user, "from": start, "to": end, "with_findings": with_findings},
        "sessions": ids,
        "findings": findings.join(chosen.select("session_id"), "session_id").count(),
        "records": len(picked),
        "records_file": "records/audit.jsonl",
        "records_sha256": h.hexdigest(),
        "record_sources": [
            {"natural_key": r.natural_key, "source": r.source, "session_id": r.session_id} for r in picked
        ],
    }
    with open(os.path.join(out, "PROVENANCE.json"), "w") as fh:
        json.dump(prov, fh, indent=1)
    return prov


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="nbtrail-spark-cut", description=__doc__.split("\n\n")[0])
    ap.add_argument("job_out", help="the job's --out directory")
    ap.add_argument("--out", required=True, help="directory for records/ and PROVENANCE.json")
    ap.add_argument("--user")
    ap.add_argument("--from", dest="start", help="sessions ending at or after (ISO 8601, UTC if no zone)")
    ap.add_argument("--to", dest="end", help="sessions starting at or before")
    ap.add_argument("--with-findings", action="store_true", help="only interpreter lifetimes with findings")
    ap.add_argument("--master")
    a = ap.parse_args(argv)
    b = SparkSession.builder.appName("nbtrail-cut").config("spark.sql.session.timeZone", "UTC")
    if a.master:
        b = b.master(a.master).config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    prov = cut(spark, a.job_out, a.out, a.user, a.start, a.end, a.with_findings)
    print(json.dumps({k: prov[k] for k in ("sessions", "findings", "records", "records_sha256")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
