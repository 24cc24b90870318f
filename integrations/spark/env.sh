# Sourced by run-tests.sh and bench.sh from the repository root: the pyspark venv in target/spark-venv
# (rebuilt when requirements.txt changes) and the Java runtime Spark runs on.
venv=target/spark-venv
req=integrations/spark/requirements.txt
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/requirements.txt"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  cp "$req" "$venv/requirements.txt"
fi
if [ -z "${JAVA_HOME:-}" ]; then
  JAVA_HOME=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
fi
export JAVA_HOME
export PYSPARK_PYTHON="$PWD/$venv/bin/python"
