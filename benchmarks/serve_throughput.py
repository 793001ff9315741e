"""Ray Serve against plain uvicorn + FastAPI: the same model, the same requests, in one run.

    make bench-install      # wrk, from Debian's packages
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/serve_throughput.py --duration 15

1. a churn champion in a scratch folder: the bundled data (5,000 customers) through ingest and
   prepare, the smoke-sized tune -> train, the trained bundle registered as `champion`;
2. each server in turn, as its own process on loopback, warmed up, then `wrk` POSTing one
   /predict row with 1 connection and with 32 (closed loop, --latency):
     plain          uvicorn + FastAPI around ModelBundle.predict_frame (benchmarks/plain_server.py)
     serve          `lakeray serve` as shipped (serve.ingress: haproxy): HAProxy -> the replica's own
                    HTTP port, the prediction routes straight from ASGI, a lone request scored at
                    once, adaptive batches under load, inference log
     serve-proxy    the same with `--conf serve.ingress=proxy`: Serve's Python proxy actor -> replica
3. requests/s, p50 and p99 per server and concurrency, non-2xx answers, and each Serve variant's
   throughput as a ratio of the plain server's.

wrk shares the 2 cores with the server it measures; every server is measured that way.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("benchmark")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def build_champion(folder: Path) -> dict:
    """A registered churn champion (and its bundle) in `folder`, made by lakeray's own stages."""
    from lakeray.config import load_settings
    from lakeray.lakehouse import Lakehouse
    from lakeray.lifecycle import SCRATCH_PATHS, run_data_stages, run_ml_stages
    from lakeray.registry.gate import promote
    from lakeray.registry.tracking import TAG, configure_tracking
    from lakeray.spark import build_spark
    from lakeray.spec import load_spec
    from lakeray_examples.datagen.bundles import bundled_data

    paths = {k: str(folder / k) for k in SCRATCH_PATHS}
    settings = load_settings(overrides={"paths": paths})
    spec = load_spec(ROOT / "pipelines" / "churn.yaml")
    spark = build_spark(settings, app_name="lakeray-bench-serve")
    with bundled_data(spec, Lakehouse.for_pipeline(settings, spec), size="default"):
        data = run_data_stages(spark, spec, settings, ("ingest", "prepare"))
    spark.stop()
    gold = data["prepare"].gold
    out = run_ml_stages(spec, settings, ("tune", "train"), gold_version=gold.version, smoke=True)
    # registered as champion directly: the benchmark needs the served model, not the gate's verdict
    tracking = configure_tracking(settings, spec.name)
    run_id = out["train"]["run_id"]
    promote(tracking.client, tracking.model_name, run_id,
            {"model_sha256": tracking.client.get_run(run_id).data.tags[f"{TAG}model_sha256"]})
    return {"paths": paths, "bundle_dir": out["train"]["bundle_dir"], "gold": gold, "spec": spec}


def request_body(champion: dict) -> str:
    from lakeray.features import load_splits
    from lakeray.serve.client import request_rows

    test = load_splits(champion["gold"].path, champion["gold"].version, splits=("test",)).frames["test"]
    return json.dumps(request_rows(test.head(1), list(champion["spec"].features))[0])


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 240) -> None:
    from lakeray.serve.client import call

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if call(f"{url}/healthz", timeout=5)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{url} not healthy after {timeout_s} s")


def wrk(url: str, script: Path, connections: int, duration: int) -> dict:
    threads = 1 if connections == 1 else 2
    proc = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s",
                           "-s", str(script), f"{url}/predict"], capture_output=True, text=True, check=True)
    text = proc.stdout

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M).groups()
        return float(value) * UNITS[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)), "p50_ms": latency("50"),
            "p99_ms": latency("99"), "requests": int(re.search(r"(\d+) requests in", text).group(1)),
            "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0}


def start(kind: str, champion: dict, port: int, logs: Path, extra: list[str] = ()) -> subprocess.Popen:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("RAY_ADDRESS", None)
    if kind == "plain":
        env.update(BENCH_SPEC=str(ROOT / "pipelines" / "churn.yaml"), BENCH_BUNDLE=champion["bundle_dir"], PYTHONPATH=str(ROOT / "lib"))
        cmd = [str(BIN / "python"), "-m", "uvicorn", "--factory", "--app-dir", str(HERE), "plain_server:build",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    else:
        conf = [f"paths.{k}={v}" for k, v in champion["paths"].items()] + [f"serve.port={port}", "ray.num_cpus=2"]
        if kind == "serve-proxy":
            conf.append("serve.ingress=proxy")
        conf += list(extra)
        cmd = [str(BIN / "lakeray"), "serve", "--pipeline", str(ROOT / "pipelines" / "churn.yaml"), "--log-level", "WARNING",
               *[arg for c in conf for arg in ("--conf", c)]]
    handle = (logs / f"{kind}.log").open("w")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--port", type=int, default=18000)
    parser.add_argument("--servers", default="plain,serve,serve-proxy")
    parser.add_argument("--conf", action="append", default=[], help="a setting for the Serve servers, e.g. serve.batch.max_batch_size=32")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("py4j", "lakeray", "mlflow", "alembic", "ray"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: run `make bench-install` (Debian package wrk)")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")   # keep the printed table readable
    results = {}
    with tempfile.TemporaryDirectory(prefix="lakeray-bench-serve-") as tmp:
        folder = Path(tmp)
        champion = build_champion(folder)
        script = folder / "post.lua"
        body = request_body(champion)
        script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                          f"wrk.body = {json.dumps(body)}\n")
        for kind in args.servers.split(","):
            proc = start(kind, champion, args.port, folder, args.conf if kind != "plain" else ())
            url = f"http://127.0.0.1:{args.port}"
            try:
                wait_healthy(url, proc)
                targets = {kind: url}
                for name, target in targets.items():
                    wrk(target, script, 32, 3)                                 # warm-up, not reported
                    for connections in (1, 32):
                        results[(name, connections)] = r = wrk(target, script, connections, args.duration)
                        log.info("%-16s c=%-2d %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  non-2xx %d", name, connections,
                                 r["rps"], r["p50_ms"], r["p99_ms"], r["non2xx"])
            finally:
                stop(proc)
        import xgboost

        trees = xgboost.Booster(model_file=str(Path(champion["bundle_dir"]) / "model.ubj")).num_boosted_rounds()
    print(f"one /predict row per request, churn champion ({trees} boosting rounds), wrk {args.duration} s per run, 2 cores")
    print(f"{'server':<16} {'conc':>4} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>7} {'x plain':>7}")
    for (name, connections), r in results.items():
        plain = results.get(("plain", connections))
        ratio = f"{r['rps'] / plain['rps']:.2f}" if plain else "-"
        print(f"{name:<16} {connections:>4} {r['rps']:>8.0f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} "
              f"{r['non2xx'] + r['socket_errors']:>7} {ratio:>7}")


if __name__ == "__main__":
    main()
