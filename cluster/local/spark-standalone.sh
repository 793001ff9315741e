#!/usr/bin/env bash
# A real Spark standalone cluster on this machine (loopback only): one master, one worker.
#   cluster/local/spark-standalone.sh start [PORT]   -> prints the master URL (spark://127.0.0.1:PORT)
#   cluster/local/spark-standalone.sh stop
# Then: spark-submit --master spark://127.0.0.1:PORT jobs/ingest.py --pipeline pipelines/churn.yaml
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${LAKERAY_VENV:-$PWD/.venv}
RUN=${LAKERAY_SPARK_RUN:-$PWD/data/spark-standalone}
export SPARK_HOME=${SPARK_HOME:-$("$VENV/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')}
SPARK_CLASS="$SPARK_HOME/bin/spark-class"
mkdir -p "$RUN"

wait_for() {  # wait_for FILE TEXT: up to 60 s for TEXT to appear in FILE
  for _ in $(seq 1 60); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 1
  done
  return 1
}

case "${1:-}" in
  start)
    PORT=${2:-7077}
    export SPARK_LOCAL_IP=127.0.0.1 SPARK_LOG_DIR="$RUN" SPARK_WORKER_DIR="$RUN/work"
    nohup "$SPARK_CLASS" org.apache.spark.deploy.master.Master --host 127.0.0.1 --port "$PORT" --webui-port 0 \
      >"$RUN/master.log" 2>&1 &
    echo $! >"$RUN/master.pid"
    wait_for "$RUN/master.log" "I have been elected leader" || { echo "master did not start; see $RUN" >&2; exit 1; }
    nohup "$SPARK_CLASS" org.apache.spark.deploy.worker.Worker "spark://127.0.0.1:$PORT" --host 127.0.0.1 \
      --cores "${SPARK_WORKER_CORES:-2}" --memory "${SPARK_WORKER_MEMORY:-2g}" --webui-port 0 --work-dir "$RUN/work" \
      >"$RUN/worker.log" 2>&1 &
    echo $! >"$RUN/worker.pid"
    wait_for "$RUN/worker.log" "Successfully registered with master" || { echo "worker did not register; see $RUN" >&2; exit 1; }
    echo "spark://127.0.0.1:$PORT"
    ;;
  stop)
    for role in worker master; do
      if [ -f "$RUN/$role.pid" ]; then kill "$(cat "$RUN/$role.pid")" 2>/dev/null || true; rm -f "$RUN/$role.pid"; fi
    done
    ;;
  *) echo "usage: $0 start [PORT] | stop" >&2; exit 2 ;;
esac
