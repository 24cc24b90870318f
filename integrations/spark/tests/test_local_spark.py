"""The Spark job on a real local Spark (``local[2]``) over the sample logs, checked against the desktop.

The same inputs go through ``nbtrail ingest`` + ``nbtrail analyze`` (the desktop) and through the job; the
sessions (ids, cells, users, start, how they ended) and the analyzer's findings (session, cell, rule,
position) must be the same. Then a desktop case is cut from the job's output and must reproduce the job's
sessions and findings, with provenance. Run by ``integrations/spark/run-tests.sh`` (which ``scripts/test.sh``
calls); needs ``NBTRAIL`` (the binary) and a Java runtime.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from pyspark.sql import SparkSession  # noqa: E402

from nbtrail_spark import cut as cutmod  # noqa: E402
from nbtrail_spark import job  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SAMPLE = os.path.join(ROOT, "sample-logs")
NBTRAIL = os.environ.get("NBTRAIL", os.path.join(ROOT, "target", "debug", "nbtrail"))
# Every shape of system.access.audit the samples hold, plus the audit-log delivery (where the planted
# incident is): JSON lines, CSV, Parquet (struct columns as JSON text), delivered JSON (.gz too).
SOURCES = [
    ("json", "system-table/audit_2024-05-01_2024-05-12.jsonl"),
    ("csv", "system-table/audit_2024-05-10_2024-05-21.csv"),
    ("parquet", "system-table/parquet"),
    ("delivered", "delivered"),
]


def nbtrail(*args: str, ok=(0, 1)) -> str:
    p = subprocess.run([NBTRAIL, *args], capture_output=True, text=True)
    if p.returncode not in ok:
        raise AssertionError(f"nbtrail {' '.join(args)}: exit {p.returncode}\n{p.stderr}")
    return p.stdout


def desktop(case: str, paths: list[str]) -> tuple[dict, dict, list]:
    report = json.loads(nbtrail("ingest", "--case", case, *paths))
    nbtrail("analyze", "--case", case, "--no-detections")
    sessions = {
        s["id"]: s
        for s in json.loads(nbtrail("sessions", "--case", case, "--json"))
        # SQL warehouse statements are sessions on the desktop; the job covers notebooks.
        if not s["notebook_id"].startswith("sql-warehouse/")
    }
    findings = json.loads(nbtrail("findings", "--case", case, "--json"))
    return report, sessions, findings


def ms(iso: str) -> int:
    import datetime as dt

    return round(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


class SparkJobMatchesTheDesktop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.spark = (
            SparkSession.builder.master("local[2]")
            .appName("nbtrail-test")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.execution.pythonUDF.arrow.enabled", "false")
            .getOrCreate()
        )
        cls.spark.sparkContext.setLogLevel("ERROR")
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = os.path.join(cls.tmp.name, "job")
        cls.counts = job.run(
            cls.spark, [f"{f}:{os.path.join(SAMPLE, p)}" for f, p in SOURCES], cls.out, NBTRAIL
        )
        cls.report, cls.d_sessions, cls.d_findings = desktop(
            os.path.join(cls.tmp.name, "case"), [os.path.join(SAMPLE, p) for _, p in SOURCES]
        )
        cls.j_sessions = {
            r.session_id: r.asDict() for r in cls.spark.read.parquet(os.path.join(cls.out, "sessions")).collect()
        }
        cls.j_findings = [r.asDict() for r in cls.spark.read.parquet(os.path.join(cls.out, "findings")).collect()]

    @classmethod
    def tearDownClass(cls):
        cls.spark.stop()
        cls.tmp.cleanup()

    def test_every_row_is_counted_and_the_events_are_the_desktops(self):
        c = self.counts
        self.assertEqual(c["rows_read"], c["rejected"] + c["duplicates"] + c["events"], c)
        self.assertGreater(c["duplicates"], 0, "the Parquet copy and the JSON/CSV overlap are duplicates")
        self.assertGreater(c["rejected"], 0, "the samples' malformed records are rejected, not dropped")
        r = self.report
        self.assertEqual(r["conflicts"], 0, r)
        self.assertEqual(c["events"], r["events"], (c, {k: r[k] for k in ("events", "duplicates", "errors")}))

    def test_the_same_sessions_with_the_same_ids_cells_users_and_ends(self):
        self.assertGreater(len(self.d_sessions), 50)
        self.assertEqual(sorted(self.j_sessions), sorted(self.d_sessions))
        for sid, d in self.d_sessions.items():
            j = self.j_sessions[sid]
            got = {
                "cells": j["cells"],
                "users": j["users"],
                "attached": j["attached"],
                "end_reason": j["end_reason"],
                "start": j["start_ms"],
                "cluster_id": j["cluster_id"],
            }
            want = {k: d[k] for k in ("cells", "users", "attached", "end_reason", "cluster_id")}
            want["start"] = ms(d["start"])
            self.assertEqual(got, want, sid)
        reasons = {s["end_reason"] for s in self.d_sessions.values()}
        self.assertTrue({"detach", "idle"} <= reasons, reasons)

    def test_the_same_findings_at_the_same_cells(self):
        want = sorted(
            (f["session_id"], f["cell"]["seq"], f["rule"], f["span"]["line"], f["span"]["col"])
            for f in self.d_findings
            if f["session_id"] in self.d_sessions
        )
        got = sorted((f["session_id"], f["seq"], f["code"], f["line"], f["col"]) for f in self.j_findings)
        self.assertGreater(len(want), 0, "the sample incident has findings")
        self.assertEqual(got, want)
        # The planted incident: the secret printed and posted out, in Alice's scratch notebook.
        incident = [s for s in self.d_sessions.values() if (s["notebook_path"] or "").endswith("/churn_scratch")]
        self.assertEqual(len(incident), 1)
        codes = {f["code"] for f in self.j_findings if f["session_id"] == incident[0]["id"]}
        self.assertTrue(len(codes) >= 2, codes)
        with open(os.path.join(self.out, "findings.sarif")) as fh:
            sarif = json.load(fh)
        self.assertEqual(sarif["version"], "2.1.0")
        self.assertEqual(len(sarif["runs"][0]["results"]), len(self.j_findings))

    def test_a_desktop_case_cut_from_the_job_output_reproduces_its_sessions_and_findings(self):
        dest = os.path.join(self.tmp.name, "cut")
        prov = cutmod.cut(self.spark, self.out, dest, with_findings=True)
        with open(os.path.join(dest, prov["records_file"]), "rb") as fh:
            self.assertEqual(hashlib.sha256(fh.read()).hexdigest(), prov["records_sha256"])
        self.assertEqual(prov["job"]["events"], self.counts["events"])
        self.assertTrue(all(r["source"].split(":")[0] in job.FORMATS for r in prov["record_sources"]))
        _, sessions, findings = desktop(os.path.join(self.tmp.name, "cut-case"), [os.path.join(dest, "records")])
        self.assertEqual(sorted(sessions), prov["sessions"])
        for sid, s in sessions.items():
            self.assertEqual(s["cells"], self.j_sessions[sid]["cells"], sid)
        got = sorted((f["session_id"], f["cell"]["seq"], f["rule"], f["span"]["line"]) for f in findings)
        want = sorted(
            (f["session_id"], f["seq"], f["code"], f["line"]) for f in self.j_findings if f["session_id"] in sessions
        )
        self.assertEqual(got, want)
        self.assertEqual(len(got), prov["findings"])


class DesktopRulesInPython(unittest.TestCase):
    """The job's ports of the desktop's keys and languages, on the desktop's own test vectors."""

    def test_natural_key_and_session_id_match_the_desktops_vectors(self):
        # The same vectors are pinned on the Rust side (crates/store/src/sessions.rs,
        # natural_key_and_session_id_agree_with_the_spark_job): non-ASCII keys sort by UTF-8 bytes there.
        k = job.natural_key(
            "ServiceMain-abc124",
            1714557661000,
            "notebook",
            "runCommand",
            {"notebookId": "3141592653589793", "commandText": "print(1)", "é": "ü"},
        )
        self.assertEqual(k, "7cb9f253ac6c47f91295ea355f109c3b")
        self.assertEqual(job.session_id("3141592653589793", "0501-123456-abcd1234", k), "885df3f0bca6")
        k = job.natural_key("r", 1, "s", "a", {"a": "1"})
        self.assertNotEqual(k, job.natural_key("r", 1, "s", "a", {"a": "2"}))
        self.assertNotEqual(job.natural_key("ab", 1, "c", "a", {}), job.natural_key("a", 1, "bc", "a", {}))
        self.assertIsNone(job.natural_key("r", None, "s", "a", {}))

    def test_cell_language_magic_wins_then_the_logged_language(self):
        self.assertEqual(job.cell_language("%sql select 1", "python"), "sql")
        self.assertEqual(job.cell_language("  %%pip install x", None), "python")
        self.assertEqual(job.cell_language("%md\n# x", "python"), "markdown")
        self.assertEqual(job.cell_language("%unknown x", "SCALA"), "scala")
        self.assertEqual(job.cell_language("print(1)", None), None)


if __name__ == "__main__":
    unittest.main(verbosity=2)
