"""Distributed training (lakeray.train.xgb: Ray Train's XGBoostTrainer, or one Ray task for one
worker) against plain xgboost.train, same data, same total threads, in one run.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/train_distributed.py --rows 1000000 --cols 30 --rounds 200
    ... --workers 2 --threads-per-worker 1          # the old sizing: 2 single-threaded workers
    ... --engine ray_train                          # one worker, but through Ray Train

plain        xgboost.train(nthread=W*T) on the whole matrix in this process
distributed  lakeray.train.xgb.train_xgboost: W Ray Train workers x T threads (default auto: one
             worker per Ray node, as many threads as the node has CPUs), each on its row shard
             from the object store, Rabit allreduce, a report + checkpoint every K rounds and at the end
Printed: seconds for each, the ratio distributed / plain, the validation AUC of both, and where
the distributed time went. The distributed time is end to end (shards put in the object store,
worker-group start, training, reports, final checkpoint read back); Ray is already up.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time

import numpy as np

log = logging.getLogger("benchmark")


def make_data(rows: int, cols: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, cols)).astype(np.float32)
    w = rng.normal(size=cols)
    logit = x @ w * 0.5 + np.sin(x[:, 0] * 2) + x[:, 1] * x[:, 2]
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    return x, y


def _count(value: str):
    return value if value == "auto" else float(value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--workers", type=_count, default="auto", help="a number or auto")
    parser.add_argument("--threads-per-worker", type=_count, default="auto", help="cpus_per_worker: a number or auto")
    parser.add_argument("--checkpoint-every", type=int, default=25)
    parser.add_argument("--health-check-s", type=lambda v: None if v == "ray" else float(v), default=0.5,
                        help="the Train controller's poll interval (RAY_TRAIN_HEALTH_CHECK_INTERVAL_S); "
                             "ray = Ray's default (2 s)")
    parser.add_argument("--engine", default="auto", choices=["auto", "ray_train", "ray_task"],
                        help="train.engine: auto = one Ray task for one worker, Ray Train for more")
    parser.add_argument("--repeat", type=int, default=1, help="plain and distributed alternately, N times each")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from lakeray.config import load_settings
    from lakeray.lifecycle import SCRATCH_PATHS
    from lakeray.raysession import ray_session

    # the Ray a job gets (loopback, token auth, OMP_WAIT_POLICY=PASSIVE in the workers) on one node
    # of os.cpu_count() logical CPUs, nothing but the training workers asking for them; started
    # first, as in the train job, so that its own start-up is over before anything is timed
    with tempfile.TemporaryDirectory() as scratch:
        settings = load_settings(overrides={"paths": {k: f"{scratch}/{k}" for k in SCRATCH_PATHS},
                                            "ray": {"address": "local", "num_cpus": os.cpu_count()}})
        with ray_session(settings, log_to_driver=False):
            runs = [_compare(args, settings.path("ray_storage"), i) for i in range(args.repeat)]
    if args.repeat > 1:
        print(f"median of {args.repeat}: plain {statistics.median(r[0] for r in runs):.1f} s, distributed "
              f"{statistics.median(r[1] for r in runs):.1f} s, ratio {statistics.median(r[1] / r[0] for r in runs):.2f}")


def _compare(args, storage: str, attempt: int) -> tuple[float, float]:
    import xgboost
    from sklearn.metrics import roc_auc_score

    from lakeray.train.resources import resolve_sizing
    from lakeray.train.xgb import train_xgboost

    workers = args.workers if args.workers == "auto" else int(args.workers)
    sizing = resolve_sizing([float(os.cpu_count())], workers, args.threads_per_worker)   # what this node gives
    threads = sizing.num_workers * sizing.nthread
    x, y = make_data(args.rows + args.rows // 10, args.cols)
    train, valid = (x[: args.rows], y[: args.rows]), (x[args.rows:], y[args.rows:])
    params = {"objective": "binary:logistic", "eval_metric": "logloss", "tree_method": "hist", "max_depth": 6, "eta": 0.1}

    load = os.getloadavg()[0]
    began = time.perf_counter()
    plain = xgboost.train({**params, "nthread": threads}, xgboost.DMatrix(train[0], label=train[1]),
                          num_boost_round=args.rounds,
                          evals=[(xgboost.DMatrix(valid[0], label=valid[1]), "validation")], verbose_eval=False)
    plain_s = time.perf_counter() - began
    plain_auc = roc_auc_score(valid[1], plain.predict(xgboost.DMatrix(valid[0])))

    began = time.perf_counter()
    model = train_xgboost(train, valid, params=params, num_boost_round=args.rounds, storage_path=storage,
                          name=f"bench{attempt}", num_workers=workers, cpus_per_worker=args.threads_per_worker,
                          checkpoint_every=args.checkpoint_every, health_check_interval_s=args.health_check_s,
                          engine=args.engine)
    dist_s = time.perf_counter() - began
    assert model.sizing == sizing, (model.sizing, sizing)
    dist_auc = roc_auc_score(valid[1], model.booster.predict(xgboost.DMatrix(valid[0])))
    m = model.metrics
    inside = m.get("data_seconds", 0) + m.get("train_seconds", 0)
    print(f"rows={args.rows} cols={args.cols} rounds={args.rounds} threads={threads} "
          f"(distributed: {sizing.num_workers} worker(s) x {sizing.nthread} thread(s), health check "
          f"{args.health_check_s or '2 (Ray default)'} s), load {load:.2f} -> {os.getloadavg()[0]:.2f}")
    print(f"plain xgboost.train   {plain_s:8.1f} s   valid AUC {plain_auc:.4f}")
    print(f"lakeray ({model.engine:9s})  {dist_s:8.1f} s   valid AUC {dist_auc:.4f}")
    print(f"  in the workers (rank 0): shard get + DMatrix {m.get('data_seconds', 0):.1f} s, boosting + reports "
          f"{m.get('train_seconds', 0):.1f} s, of which {m.get('reports', 0) - 1:.0f} report(s) before the last "
          f"{m.get('report_seconds', 0):.2f} s; outside the worker loop {dist_s - inside:.1f} s")
    print(f"ratio distributed / plain = {dist_s / plain_s:.2f}", flush=True)
    return plain_s, dist_s

if __name__ == "__main__":
    main()
