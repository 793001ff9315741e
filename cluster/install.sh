#!/usr/bin/env bash
# lakeray's one install step: Python environment, JVM jars, and the local services
# that the demo and the tests start (PostgreSQL). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${LAKERAY_VENV:-$ROOT/.venv}
JARS=${LAKERAY_JARS_DIR:-$ROOT/.jars}

log() { echo "[lakeray install] $*" >&2; }

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    log "missing system package(s): $*. Install them (e.g. sudo apt-get install -y $*) and re-run."
    exit 1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- system packages: Java 17 for Spark, Maven for the jars, PostgreSQL for the JDBC silo
command -v java >/dev/null || apt_install openjdk-17-jre-headless
command -v mvn >/dev/null || apt_install maven
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
  apt_install postgresql
fi

# --- Python environment
PY=${PY:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtualenv $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r requirements.txt -r requirements-dev.txt
"$VENV/bin/python" -m pip install -q --no-deps -e .
"$VENV/bin/python" -m pip check

# --- JVM jars declared in cluster/jvm/pom.xml, resolved from Maven Central
mkdir -p "$JARS"
rm -f "$JARS"/*.jar
mvn -q -B -Dstyle.color=never -f cluster/jvm/pom.xml dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$JARS"
# pyspark ships Spark, Scala, Hadoop, Jackson, Parquet and logging; keep only what it lacks,
# so that one version of each library is on the classpath.
SPARK_JARS=$("$VENV/bin/python" -c 'import pyspark, os; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')
artifact() { basename "$1" .jar | sed -E 's/-[0-9][0-9A-Za-z.+_-]*$//'; }
declare -A provided=()
for j in "$SPARK_JARS"/*.jar; do provided[$(artifact "$j")]=1; done
for j in "$JARS"/*.jar; do
  if [ -n "${provided[$(artifact "$j")]:-}" ]; then rm -f "$j"; fi
done
log "JVM jars in $JARS: $(ls "$JARS" | tr '\n' ' ')"

# lakeray's Spark defaults live in the project, not in pyspark's package folder (a reinstall of
# pyspark would silently lose them): $JARS/conf/spark-defaults.conf points spark.jars at the
# resolved jars. `spark-submit $(lakeray spark-args) jobs/x.py` passes the jars explicitly;
# SPARK_CONF_DIR=$JARS/conf makes a bare `spark-submit jobs/x.py` read this file instead.
mkdir -p "$JARS/conf"
{
  echo "# written by lakeray's cluster/install.sh from cluster/jvm/pom.xml"
  echo "spark.jars $(ls "$JARS"/*.jar | paste -sd, -)"
} > "$JARS/conf/spark-defaults.conf"
# an earlier install wrote it into pyspark's own conf folder: remove that copy (only ours)
OLD_DEFAULTS=$(dirname "$SPARK_JARS")/conf/spark-defaults.conf
if [ -f "$OLD_DEFAULTS" ] && head -1 "$OLD_DEFAULTS" | grep -q "written by lakeray"; then
  rm -f "$OLD_DEFAULTS"
fi
