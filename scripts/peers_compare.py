"""Recall and precision per family: nbtrail's analyzer beside Bandit on public material (issue 17).

The corpus is fetched at benchmark time and kept out of the repository: the example files shipped in
Bandit's source distribution on PyPI for the families issue 17 names (hardcoded credentials, TLS
verification and weak protocols, deserialization including YAML, hardcoded temporary paths). The ground
truth below is this project's own reading of each file, line by line, as an auditor would want it flagged;
it departs from Bandit's comments where those flag something that is not a risk (an empty-string comparison,
`ssl.wrap_socket()` whose default protocol is negotiated TLS) — each departure is listed in TRUTH_NOTES.

Matching: a finding counts for (file, first line of its statement, family). Bandit's import blacklist
(B4xx: "import pickle") is left out: it reports modules, not uses, and neither tool is asked to.

Semgrep (optional 4th argument) runs the rules in scripts/peers/semgrep-rules.yml, written for this benchmark
(PyPI's Semgrep ships no rules and the registry is not reachable offline) — with sight of the corpus, so its
figures measure those rules as much as Semgrep.

Usage: python3 peers_compare.py EXAMPLES_DIR NBTRAIL BANDIT [SEMGREP]
"""

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

CRED, TLS, DESER, TMP = "credentials", "tls", "deserialization", "temp paths"
TRUTH = {
    "hardcoded-passwords.py": {CRED: [4, 8, 14, 26, 33, 38, 46, 50, 54, 58, 62, 66, 70, 94, 102]},
    "hardcoded-tmp.py": {TMP: [1, 8, 11]},
    "requests-ssl-verify-disabled.py": {TLS: [6, 8, 10, 12, 14, 16, 18, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 42]},
    "ssl-insecure-version.py": {TLS: [4, 5, 6, 8, 9, 10, 13, 14, 15, 16, 18, 19, 20, 21, 23, 24, 26, 27, 32, 35, 38, 41]},
    "unverified_context.py": {TLS: [7]},
    "pickle_deserialize.py": {DESER: [7, 12, 15]},
    "dill.py": {DESER: [6, 11, 14]},
    "jsonpickle.py": {DESER: [6, 8, 10]},
    "yaml_load.py": {DESER: [9, 22]},
    "okay.py": {},
}
TRUTH_NOTES = [
    "hardcoded-passwords.py:20 `password == ''` is a check for an empty password, not a credential",
    "hardcoded-passwords.py:74,85 are Bandit's own 'None' (no issue) cases",
    "ssl-insecure-version.py:30 `ssl.wrap_socket()` defaults to negotiated TLS, not a weak version",
    "ssl-insecure-version.py uses `from pyOpenSSL import SSL` (the real module is `OpenSSL`): counted as pyOpenSSL",
]


def family_nbtrail(rule: str) -> str | None:
    return {"NBT002": CRED, "NBT003": CRED, "NBT006": TLS, "NBT008": DESER, "NBT009": TMP}.get(rule)


def family_bandit(test_id: str) -> str | None:
    if test_id in ("B105", "B106", "B107"):
        return CRED
    if test_id == "B108":
        return TMP
    if test_id in ("B501", "B502", "B503", "B504", "B323"):
        return TLS
    if test_id in ("B301", "B302", "B506"):
        return DESER
    return None


def run_nbtrail(nbtrail: str, files: list[Path]) -> set:
    out = subprocess.run([nbtrail, "analyze", "--format", "json", *map(str, files)], capture_output=True, text=True)
    found = set()
    for f in json.loads(out.stdout or "[]"):
        fam = family_nbtrail(f["rule"])
        if fam:
            found.add((Path(f["session_id"]).name, f["span"]["line"], fam))
    return found


def run_bandit(bandit: str, files: list[Path]) -> set:
    out = subprocess.run([bandit, "-f", "json", "-q", *map(str, files)], capture_output=True, text=True)
    found = set()
    for r in json.loads(out.stdout)["results"]:
        fam = family_bandit(r["test_id"])
        if fam:
            found.add((Path(r["filename"]).name, r["line_number"], fam))
    return found


def run_semgrep(semgrep: str, files: list[Path]) -> set:
    rules = Path(__file__).parent / "peers" / "semgrep-rules.yml"
    out = subprocess.run(
        [semgrep, "--config", str(rules), "--json", "--metrics=off", "-q", *map(str, files)],
        capture_output=True,
        text=True,
    )
    prefix = {"credentials": CRED, "tls": TLS, "deser": DESER, "tmp": TMP}
    found = set()
    for r in json.loads(out.stdout)["results"]:
        fam = prefix.get(r["check_id"].rsplit(".", 1)[-1].split("-", 1)[0])
        if fam:
            found.add((Path(r["path"]).name, r["start"]["line"], fam))
    return found


def score(found: set, truth: set) -> dict:
    per = defaultdict(lambda: [0, 0, 0])  # tp, fp, fn
    for item in found:
        per[item[2]][0 if item in truth else 1] += 1
    for item in truth - found:
        per[item[2]][2] += 1
    return per


def main() -> None:
    examples, nbtrail, bandit = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    files = [examples / f for f in TRUTH]
    truth = {(f, line, fam) for f, fams in TRUTH.items() for fam, lines in fams.items() for line in lines}
    results = {"nbtrail": score(run_nbtrail(nbtrail, files), truth), "Bandit 1.9.4": score(run_bandit(bandit, files), truth)}
    if len(sys.argv) > 4:
        results["Semgrep (own rules)"] = score(run_semgrep(sys.argv[4], files), truth)
    print(f"corpus: {len(files)} files from Bandit's sdist examples, {len(truth)} labelled findings\n")
    print("| family | tool | TP | FP | FN | recall | precision |")
    print("|---|---|---|---|---|---|---|")
    fams = sorted({t[2] for t in truth})
    for fam in fams + ["all"]:
        for tool, per in results.items():
            tp, fp, fn = (sum(v[i] for v in per.values()) for i in range(3)) if fam == "all" else per[fam]
            rec = tp / (tp + fn) if tp + fn else 1.0
            prec = tp / (tp + fp) if tp + fp else 1.0
            print(f"| {fam} | {tool} | {tp} | {fp} | {fn} | {rec:.2f} | {prec:.2f} |")
    print("\nmisses and false positives (nbtrail):")
    found = run_nbtrail(nbtrail, files)
    for item in sorted(truth - found):
        print("  missed", *item)
    for item in sorted(found - truth):
        print("  extra ", *item)
    print("\nground truth departs from Bandit's comments:")
    for n in TRUTH_NOTES:
        print("  -", n)


if __name__ == "__main__":
    main()
