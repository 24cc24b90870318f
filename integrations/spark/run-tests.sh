#!/usr/bin/env bash
# The Spark job's test on a real local Spark (local[2]): pyspark from PyPI into target/spark-venv, Java from
# the system (scripts/test.sh installs Debian's openjdk-17-jre-headless when it is missing). Needs the
# nbtrail binary (NBTRAIL, default target/debug/nbtrail, which `cargo test` builds).
set -euo pipefail
cd "$(dirname "$0")/../.."
source integrations/spark/env.sh
export NBTRAIL=${NBTRAIL:-$PWD/target/debug/nbtrail}
[ -x "$NBTRAIL" ] || cargo build -q -p nbtrail --bin nbtrail
# unittest prints "ok"/"FAIL" per test; the summary line is translated for scripts/test.sh's tally.
set +e
"$venv/bin/python" integrations/spark/tests/test_local_spark.py 2>&1 | grep -v -E "^\s*warnings.warn|UserWarning|WARN (Utils|NativeCodeLoader)" | tee /tmp/nbtrail-spark-test.$$
status=${PIPESTATUS[0]}
set -e
awk '/\.\.\. ok$/ { sub(/ \(.*/, ""); print "ok - spark: " $0 } /\.\.\. (FAIL|ERROR)$/ { print "not ok - spark: " $0 }' /tmp/nbtrail-spark-test.$$
rm -f /tmp/nbtrail-spark-test.$$
exit "$status"
