"""Data-parallel XGBoost on Ray Train (V2 XGBoostTrainer with a training-loop function), or on
one Ray task where one worker does the job (lakeray.train.task; the `engine` argument).

The driver cuts (x, y) of train and validation into one contiguous row shard per worker and puts
each in Ray's object store; a worker gets its rank's shard by reference (no Ray Data: on one node
the arrays are read from shared memory, not copied). XGBoost's collective (the Rabit tracker) is
set up by Ray Train. Metrics and a checkpoint go to Ray Train every `checkpoint_every` rounds and
at the end, not more often: a report blocks a worker until the controller has taken the previous
one, and the controller polls every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (Ray's default 2 s; 0.5 s
here: 20 reports cost 1.9 s each at 2 s, 0.19 s each at 0.2 s). A worker that dies is replaced and
training resumes from the last checkpoint (FailureConfig). The model is saved as UBJSON, never
pickled, with its SHA-256.

`x` is a dense float32 array (NaN = missing; categorical columns hold integer category codes
when `feature_types` marks them "c") or a scipy.sparse CSR matrix.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import posixpath
import signal
import time
from pathlib import Path

import numpy as np

from lakeray.models.bundle import MODEL_FILE, sha256_file
from lakeray.models.families import dmatrix
from lakeray.raysession import scoped_env
from lakeray.train.resources import AUTO, Sizing, worker_params

log = logging.getLogger(__name__)
HEALTH_CHECK_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"   # read by Ray Train V2's controller (Ray 2.60)


def _report_callback(checkpoint_every: int, kill_at: dict | None):
    import ray.train
    from ray.train.xgboost import RayTrainReportCallback

    class EveryK(RayTrainReportCallback):
        """Metrics + checkpoint every K rounds and at the end (the stock callback reports every round)."""

        def __init__(self):
            super().__init__(frequency=checkpoint_every, checkpoint_at_end=True, filename=MODEL_FILE)
            self.offset = 0
            self.timings: dict = {}
            self.started = time.perf_counter()
            self.report_seconds, self.reports = 0.0, 0

        def _round_metrics(self, evals_log, rounds: int) -> dict:
            metrics = {k: float(v) for k, v in self._get_report_dict(evals_log).items()}
            return {**metrics, "rounds": rounds, "resumed_from_round": self.offset, **self.timings,
                    "train_seconds": time.perf_counter() - self.started,
                    "report_seconds": self.report_seconds, "reports": self.reports + 1}   # this one included

        def _checkpoint(self, metrics: dict, model) -> None:
            began = time.perf_counter()
            self._save_and_report_checkpoint(metrics, model)
            self.report_seconds += time.perf_counter() - began
            self.reports += 1

        def after_iteration(self, model, epoch, evals_log):
            self._evals_log = evals_log
            done = self.offset + epoch + 1
            if kill_at and self.offset == 0 and done == kill_at["round"] \
                    and ray.train.get_context().get_world_rank() == kill_at["rank"]:
                # let the controller register the last checkpoint first: it polls workers every ~2 s,
                # and rounds on test-sized data take milliseconds
                time.sleep(kill_at.get("delay_s", 6))
                log.error("fault injection: killing training worker rank %d at round %d", kill_at["rank"], done)
                os.kill(os.getpid(), signal.SIGKILL)
            if checkpoint_every and done % checkpoint_every == 0:
                self._last_checkpoint_iteration = done - 1   # in boosted rounds: xgboost restarts epochs at 0 on resume
                self._checkpoint(self._round_metrics(evals_log, done), model)
            return False

        def after_training(self, model):
            if self._last_checkpoint_iteration != model.num_boosted_rounds() - 1:
                metrics = self._round_metrics(self._evals_log, model.num_boosted_rounds())
                self._last_checkpoint_iteration = model.num_boosted_rounds() - 1
                self._checkpoint(metrics, model)
            return model

    return EveryK()


def train_loop(config: dict) -> None:
    """Runs on every Ray Train worker."""
    import ray
    import ray.train
    import xgboost
    from ray.train.xgboost import RayTrainReportCallback

    began = time.perf_counter()
    rank = ray.train.get_context().get_world_rank()
    shard = ray.get(config["shards"][rank])
    params, nthread, extra = worker_params(config)
    dtrain, dvalid = (dmatrix(*shard[k], config["feature_types"], nthread) for k in ("train", "validation"))
    del shard
    start, rounds = None, config["num_boost_round"]
    checkpoint = ray.train.get_checkpoint()
    callback = _report_callback(config["checkpoint_every"], config.get("kill_worker_at"))
    callback.timings = {"data_seconds": time.perf_counter() - began, "nthread": nthread, **extra}   # shard get + DMatrix, this worker
    if checkpoint is not None:  # a replaced worker group resumes from the last checkpoint
        start = RayTrainReportCallback.get_model(checkpoint, filename=MODEL_FILE)
        callback.offset = start.num_boosted_rounds()
        rounds -= callback.offset
    xgboost.train(params, dtrain, num_boost_round=max(rounds, 0), evals=[(dvalid, "validation")],
                  xgb_model=start, verbose_eval=False, callbacks=[callback])


def shard_bounds(rows: int, parts: int) -> list[tuple[int, int]]:
    """`parts` contiguous row ranges covering 0..rows, sizes differing by at most one."""
    edges = np.linspace(0, rows, parts + 1).astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))


def put_shards(train: tuple, validation: tuple, parts: int) -> list:
    """One object-store reference per worker: {"train": (x, y), "validation": (x, y)}, its rows of each."""
    import ray

    if train[0].shape[0] < parts:
        raise ValueError(f"{train[0].shape[0]} training rows cannot be split across {parts} workers")
    splits = {"train": train, "validation": validation}
    cuts = {name: shard_bounds(x.shape[0], parts) for name, (x, _) in splits.items()}
    refs = []
    for i in range(parts):
        shard = {}
        for name, (x, y) in splits.items():
            a, b = cuts[name][i]
            shard[name] = (x[a:b], np.asarray(y[a:b], dtype=np.float32))
        refs.append(ray.put(shard))
    return refs


@dataclasses.dataclass
class TrainedModel:
    booster: object
    rounds: int
    metrics: dict
    checkpoint_path: str
    sizing: Sizing
    engine: str = "ray_train"

    def save(self, folder: Path) -> tuple[Path, str]:
        """Write the model as UBJSON; returns (path, sha256)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / MODEL_FILE
        self.booster.save_model(str(path))
        return path, sha256_file(path)


def train_xgboost(train: tuple, validation: tuple, *, params: dict, num_boost_round: int, storage_path: str,
                  name: str, num_workers: int | str = AUTO, cpus_per_worker: float | str = AUTO,
                  gpus_per_worker: float = 0.0, checkpoint_every: int = 25, max_failures: int = 2,
                  feature_types: list[str] | None = None, health_check_interval_s: float | None = 0.5,
                  engine: str = AUTO, kill_worker_at: dict | None = None) -> TrainedModel:
    """Train on Ray; ray must be initialised by the caller.

    train/validation: (x, y), x a float32 array or a CSR matrix. num_workers / cpus_per_worker:
    numbers, or "auto" (one worker per node with CPUs / the smallest such node's CPUs); each
    worker runs floor(cpus_per_worker) XGBoost threads. The resolved sizing is returned with the model.
    engine: "ray_train" (XGBoostTrainer workers), "ray_task" (one worker as one Ray task,
    lakeray.train.task) or "auto" (the task where the sizing has one worker).
    health_check_interval_s: how often the Train controller polls the workers (Ray's default, 2 s,
    where None); a report waits for the poll that takes the one before it, the end of training for one.
    kill_worker_at={"rank": r, "round": n} SIGKILLs that worker once, on the first attempt
    (used by the tests to prove recovery from the last checkpoint)."""
    import ray

    from lakeray.train.resources import check_worker_resources, node_cpus, pick_engine, resolve_sizing

    cpus_by_node = node_cpus(ray.nodes())
    sizing = resolve_sizing(cpus_by_node, num_workers, cpus_per_worker, gpus_per_worker)
    engine = pick_engine(engine, sizing)
    check_worker_resources(ray.cluster_resources(), sizing.num_workers, sizing.cpus_per_worker,
                           sizing.gpus_per_worker, cpus_by_node)
    if feature_types is not None and len(feature_types) != train[0].shape[1]:
        raise ValueError(f"feature_types has {len(feature_types)} entries for {train[0].shape[1]} columns")
    shards = put_shards(train, validation, sizing.num_workers)   # held here until training returns
    config = {"params": params, "num_boost_round": num_boost_round, "checkpoint_every": checkpoint_every,
              "nthread": sizing.nthread, "use_gpu": sizing.gpus_per_worker > 0, "feature_types": feature_types,
              "kill_worker_at": kill_worker_at}
    if engine == "ray_task":
        booster, metrics, checkpoint = _fit_task(shards[0], config, posixpath.join(storage_path, name), sizing,
                                                 max_failures)
    else:
        booster, metrics, checkpoint = _fit_ray_train(shards, config, storage_path, name, sizing, max_failures,
                                                      health_check_interval_s, spread=num_workers == AUTO)
    del shards
    log.info("trained %d rounds with %s on %d worker(s) x %g CPU (%d threads): %s", booster.num_boosted_rounds(),
             engine, sizing.num_workers, sizing.cpus_per_worker, sizing.nthread, metrics)
    return TrainedModel(booster, booster.num_boosted_rounds(), metrics, checkpoint, sizing, engine)


def _fit_task(shard, config: dict, run_folder: str, sizing: Sizing, max_failures: int) -> tuple:
    import xgboost

    from lakeray.train.task import run_train_task

    out = run_train_task(shard, config, run_folder=run_folder, cpus=sizing.cpus_per_worker,
                         gpus=sizing.gpus_per_worker, max_failures=max_failures)
    booster = xgboost.Booster()
    booster.load_model(bytearray(out["model"]))
    return booster, out["metrics"], out["checkpoint_path"]


def _fit_ray_train(shards: list, config: dict, storage_path: str, name: str, sizing: Sizing, max_failures: int,
                   health_check_interval_s: float | None, spread: bool) -> tuple:
    import ray.train
    from ray.train.xgboost import RayTrainReportCallback, XGBoostTrainer

    resources = {"CPU": sizing.cpus_per_worker, **({"GPU": sizing.gpus_per_worker} if config["use_gpu"] else {})}
    trainer = XGBoostTrainer(
        train_loop,
        train_loop_config={**config, "shards": shards},
        scaling_config=ray.train.ScalingConfig(num_workers=sizing.num_workers, use_gpu=config["use_gpu"],
                                               resources_per_worker=resources,
                                               placement_strategy="SPREAD" if spread else "PACK"),
        run_config=ray.train.RunConfig(storage_path=storage_path, name=name,
                                       failure_config=ray.train.FailureConfig(max_failures=max_failures),
                                       checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2)),
    )
    with scoped_env(HEALTH_CHECK_ENV, None if health_check_interval_s is None else str(health_check_interval_s)):
        result = trainer.fit()     # the controller takes the variable from this process's environment
    booster = RayTrainReportCallback.get_model(result.checkpoint, filename=MODEL_FILE)
    return booster, dict(result.metrics), result.checkpoint.path
