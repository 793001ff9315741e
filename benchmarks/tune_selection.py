"""Ray Tune overhead, and ASHA against a full run of the same trials, in one run.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/tune_selection.py --rows 200000 --trials 16 --rounds 200

The same N XGBoost configurations (drawn once from conf/base's xgboost space for --rows, fixed
seed) run through lakeray's trial function and its Tune settings (search.TUNE_CONFIG, the
experiment-state period) twice, with the same concurrency, early stopping off (patience beyond
the round cap):
  full  FIFO: every trial trains all its rounds
  asha  ASHAScheduler (conf/base's grace period and reduction factor)
Printed:
  * Tune overhead of the full run: wall time against the sum of trial times / concurrency
    (what a perfect scheduler would take), and the ratio;
  * ASHA: compute (boosting rounds) spent, the best validation AUC of both runs, and the fraction
    of the full run's compute ASHA had spent when it first reached within 0.5% of the full run's best.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import tempfile
import time

import numpy as np
from train_distributed import make_data  # benchmarks/ is the script's folder

log = logging.getLogger("benchmark")


def draw_configs(space: dict, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    configs = []
    for _ in range(n):
        hyper = {}
        for name, dist in space.items():
            if dist["type"] == "int":
                hyper[name] = int(rng.integers(dist["low"], dist["high"] + 1))
            elif dist["type"] == "loguniform":
                hyper[name] = float(math.exp(rng.uniform(math.log(dist["low"]), math.log(dist["high"]))))
            else:
                hyper[name] = float(rng.uniform(dist["low"], dist["high"]))
        configs.append({"family": "xgboost", "xgboost": hyper})
    return configs


def run(trainable, configs, storage, name, scheduler, concurrency):
    import ray.tune

    from lakeray.tune.search import TUNE_CONFIG

    tuner = ray.tune.Tuner(trainable, param_space={"cfg": ray.tune.grid_search(configs)},
                           tune_config=ray.tune.TuneConfig(**TUNE_CONFIG, metric="score", mode="max",
                                                           scheduler=scheduler, max_concurrent_trials=concurrency),
                           run_config=ray.tune.RunConfig(storage_path=storage, name=name, verbose=0))
    began = time.perf_counter()
    grid = tuner.fit()
    return grid, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--cols", type=int, default=30)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    import ray.tune
    from ray.tune.schedulers import ASHAScheduler

    from lakeray.config import load_settings
    from lakeray.tune.search import CHECKPOINT_PERIOD_ENV, trial_data, tune_settings
    from lakeray.tune.trainable import matrix_key, trial

    conf = tune_settings(load_settings(), rows=args.rows)
    os.environ.setdefault(CHECKPOINT_PERIOD_ENV, str(conf["experiment_checkpoint_s"]))   # as lakeray's search does
    # no early stopping (patience beyond the round cap): FIFO trains every round of every trial
    family = dict(conf["families"]["xgboost"], rounds=args.rounds, early_stopping_rounds=args.rounds + 1)
    conf.update(families={"xgboost": family}, rounds_scale=1.0)
    x, y = make_data(args.rows + args.rows // 5, args.cols, seed=args.seed)
    every = int(conf["report_every"])
    matrices = {matrix_key(family): (x[: args.rows], y[: args.rows], x[args.rows:], y[args.rows:], None)}
    data = trial_data(conf, "binary", "roc_auc", 0, matrices, nthread=1)

    def trainable(config, data):      # grid_search wraps the config one level down
        return trial(config["cfg"], data)

    ray.init(num_cpus=args.concurrency, include_dashboard=True, dashboard_host="127.0.0.1",
             _node_ip_address="127.0.0.1", logging_level="WARNING", log_to_driver=False)
    wrapped = ray.tune.with_resources(ray.tune.with_parameters(trainable, data=data), {"cpu": 1})
    configs = draw_configs(family["space"], args.trials, args.seed)
    with tempfile.TemporaryDirectory() as storage:
        full, full_wall = run(wrapped, configs, storage, "full", None, args.concurrency)
        asha = ASHAScheduler(time_attr="training_iteration", max_t=math.ceil(args.rounds / every) + 1,
                             grace_period=int(conf["scheduler"]["grace_period"]),
                             reduction_factor=float(conf["scheduler"]["reduction_factor"]))
        early, asha_wall = run(wrapped, configs, storage, "asha", asha, args.concurrency)
    ray.shutdown()

    trial_sum = sum(r.metrics["time_total_s"] for r in full)
    ideal = trial_sum / args.concurrency
    best_full = max(r.metrics["score"] for r in full)
    full_rounds = args.rounds * len(configs)          # no early stopping: every trial trains every round
    # the final report names the best round; the rounds trained by then are all of them
    rows = sorted((row["timestamp"], args.rounds if row["final"] else row["rounds"], row["score"], i)
                  for i, r in enumerate(early) for _, row in r.metrics_dataframe.iterrows())
    done, spent, reached = {}, 0, None
    for _, rounds, score, i in rows:
        spent += rounds - done.get(i, 0)
        done[i] = rounds
        if reached is None and score >= best_full * (1 - 0.005):
            reached = spent
    asha_rounds = sum(done.values())
    best_asha = max(r.metrics["score"] for r in early)
    print(f"rows={args.rows} cols={args.cols} trials={args.trials} rounds/trial={args.rounds} concurrency={args.concurrency}")
    print(f"full run: wall {full_wall:.1f} s; sum of trial times {trial_sum:.1f} s; ideal wall (sum / concurrency) "
          f"{ideal:.1f} s; Tune overhead ratio wall / ideal = {full_wall / ideal:.2f}")
    print(f"ASHA: wall {asha_wall:.1f} s; rounds {asha_rounds} of {full_rounds} ({asha_rounds / full_rounds:.0%}); "
          f"best AUC {best_asha:.4f} vs full {best_full:.4f}")
    if reached is None:
        print("ASHA never came within 0.5% of the full run's best")
    else:
        print(f"ASHA reached within 0.5% of the full best after {reached} rounds = "
              f"{reached / full_rounds:.0%} of the full run's compute")


if __name__ == "__main__":
    main()
