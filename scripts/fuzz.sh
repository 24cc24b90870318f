#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 60 s each; FUZZ_SECONDS=3600 for an hour),
# seeded from the sample logs and analyzer fixtures. Not part of CI (unbounded by nature); record hours
# and findings in BENCHMARKS.md "Fuzzing". Any crash is written to fuzz/artifacts/<target>/: turn it into
# a regression test named after the bug in the crate concerned, then fix it.
#
# cargo-fuzz needs nightly-only flags; this machine has one stable toolchain, so RUSTC_BOOTSTRAP=1 lets
# stable rustc accept them (libFuzzer's coverage instrumentation; no sanitizer: -s none).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1

seed() { # target, files...
  local dir="fuzz/corpus/$1"; shift
  mkdir -p "$dir"
  for f in "$@"; do [ -f "$f" ] && cp "$f" "$dir/$(basename "$f")" || true; done
}
seed ingest_file $(find sample-logs -type f \( -name '*.json' -o -name '*.jsonl' -o -name '*.csv' -o -name '*.gz' \) | head -20) $(find sample-logs -type f \( -name '*.parquet' -o -name '*.avro' \))
seed csv_framing sample-logs/system-table/*.csv
seed capture_log $(find tests crates -name 'capture-*.jsonl' 2>/dev/null | head -5)
mkdir -p fuzz/corpus/query
printf '%s' 'user:alice code:secrets.get' > fuzz/corpus/query/a
printf '%s' '(a OR -b) AND NOT "x y" time:[2024-05-01 TO 2024-05-02] rule:NBT0*' > fuzz/corpus/query/b
seed analyzer_python $(find crates/analyzer/tests -name '*.py' | head -30)
seed analyzer_ipynb $(find crates/analyzer/tests -name '*.ipynb' | head -30)
mkdir -p fuzz/corpus/bundle_verify

targets=${FUZZ_TARGETS:-"ingest_file csv_framing capture_log query analyzer_python analyzer_ipynb bundle_verify"}
status=0
for t in $targets; do
  echo "== fuzz $t for ${SECONDS_PER_TARGET}s"
  if ! cargo fuzz run -s none "$t" -- -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=4096 -max_len=1048576 \
      2>&1 | tail -n 5; then
    echo "!! $t: crash found, see fuzz/artifacts/$t/"
    status=1
  fi
done
exit $status
