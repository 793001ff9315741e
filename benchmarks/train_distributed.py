"""Distributed training (Ray Train XGBoostTrainer) against plain xgboost.train, same data,
same total threads, in one run.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/train_distributed.py --rows 1000000 --cols 30 --rounds 50

plain        xgboost.train(nthread=W*T) on the whole matrix in this process
distributed  lakeray.train.xgb.train_xgboost: W Ray Train workers x T threads, each on its
             shard (Ray Data from_pandas), Rabit allreduce, reports/checkpoints every K rounds
Printed: seconds for each, the ratio distributed / plain, and the validation AUC of both.
The distributed time is end to end (worker-group start, dataset split, training, final checkpoint).
"""

from __future__ import annotations

import argparse
import logging
import os
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads-per-worker", type=int, default=1)
    parser.add_argument("--checkpoint-every", type=int, default=25)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    import xgboost
    from sklearn.metrics import roc_auc_score

    from lakeray.train.xgb import train_xgboost

    x, y = make_data(args.rows + args.rows // 10, args.cols)
    train, valid = (x[: args.rows], y[: args.rows]), (x[args.rows:], y[args.rows:])
    params = {"objective": "binary:logistic", "eval_metric": "logloss", "tree_method": "hist", "max_depth": 6, "eta": 0.1}
    threads = args.workers * args.threads_per_worker

    began = time.perf_counter()
    plain = xgboost.train({**params, "nthread": threads}, xgboost.DMatrix(train[0], label=train[1]),
                          num_boost_round=args.rounds, evals=[(xgboost.DMatrix(valid[0], label=valid[1]), "validation")],
                          verbose_eval=False)
    plain_s = time.perf_counter() - began
    plain_auc = roc_auc_score(valid[1], plain.predict(xgboost.DMatrix(valid[0])))

    # one extra logical CPU per worker beside the threads, for Ray Data's split coordinator
    ray.init(num_cpus=threads + 1, include_dashboard=True, dashboard_host="127.0.0.1", _node_ip_address="127.0.0.1",
             logging_level="WARNING", log_to_driver=False)
    with tempfile.TemporaryDirectory() as storage:
        began = time.perf_counter()
        model = train_xgboost(train, valid, params=params, num_boost_round=args.rounds, storage_path=storage,
                              name="bench", num_workers=args.workers, cpus_per_worker=float(args.threads_per_worker),
                              nthread=args.threads_per_worker, report_every=args.checkpoint_every,
                              checkpoint_every=args.checkpoint_every)
        dist_s = time.perf_counter() - began
    ray.shutdown()
    dist_auc = roc_auc_score(valid[1], model.booster.predict(xgboost.DMatrix(valid[0])))
    print(f"rows={args.rows} cols={args.cols} rounds={args.rounds} threads={threads} "
          f"(distributed: {args.workers} workers x {args.threads_per_worker})")
    print(f"plain xgboost.train   {plain_s:8.1f} s   valid AUC {plain_auc:.4f}")
    print(f"Ray Train distributed {dist_s:8.1f} s   valid AUC {dist_auc:.4f}")
    print(f"  of which in the workers: shard transfer + DMatrix {model.metrics.get('data_seconds', 0):.1f} s, "
          f"boosting + reports/checkpoints {model.metrics.get('train_seconds', 0):.1f} s (rank 0)")
    print(f"ratio distributed / plain = {dist_s / plain_s:.2f}")


if __name__ == "__main__":
    main()
