"""Data-parallel XGBoost on Ray Train (V2 XGBoostTrainer with a training-loop function).

Each worker trains on its shard of a materialized Ray Dataset; XGBoost's collective (the
Rabit tracker) is set up by Ray Train. Metrics go to Ray Train every `report_every` rounds
and a checkpoint every `checkpoint_every` rounds, because each report costs about 2 s here
(see docs/dev-notes). A worker that dies is replaced and training resumes from the last
checkpoint (FailureConfig). The model is saved as UBJSON, never pickled, with its SHA-256.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import time
from pathlib import Path

import numpy as np

from lakeray.models.bundle import MODEL_FILE, sha256_file
from lakeray.train.resources import xgboost_device

log = logging.getLogger(__name__)
LABEL = "__label__"


def _report_callback(report_every: int, checkpoint_every: int, kill_at: dict | None):
    import ray.train
    from ray.train.xgboost import RayTrainReportCallback

    class EveryK(RayTrainReportCallback):
        """Report metrics every K rounds (the stock callback reports every round)."""

        def __init__(self):
            super().__init__(frequency=checkpoint_every, checkpoint_at_end=True, filename=MODEL_FILE)
            self.offset = 0
            self.timings: dict = {}
            self.started = time.perf_counter()

        def _round_metrics(self, evals_log, rounds: int) -> dict:
            metrics = {k: float(v) for k, v in self._get_report_dict(evals_log).items()}
            return {**metrics, "rounds": rounds, "resumed_from_round": self.offset, **self.timings,
                    "train_seconds": time.perf_counter() - self.started}

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
            metrics = self._round_metrics(evals_log, done)
            if checkpoint_every and done % checkpoint_every == 0:
                self._last_checkpoint_iteration = done - 1   # in boosted rounds: xgboost restarts epochs at 0 on resume
                self._save_and_report_checkpoint(metrics, model)
            elif done % report_every == 0:
                ray.train.report(metrics)
            return False

        def after_training(self, model):
            if self._last_checkpoint_iteration != model.num_boosted_rounds() - 1:
                metrics = self._round_metrics(self._evals_log, model.num_boosted_rounds())
                self._last_checkpoint_iteration = model.num_boosted_rounds() - 1
                self._save_and_report_checkpoint(metrics, model)
            return model

    return EveryK()


def train_loop(config: dict) -> None:
    """Runs on every Ray Train worker."""
    import ray
    import ray.train
    import xgboost
    from ray.train.xgboost import RayTrainReportCallback

    def matrix(name):
        frame = ray.train.get_dataset_shard(name).materialize().to_pandas()
        return xgboost.DMatrix(frame.drop(columns=[LABEL]).to_numpy(np.float32), label=frame[LABEL].to_numpy())

    began = time.perf_counter()
    dtrain, dvalid = matrix("train"), matrix("validation")
    start, rounds = None, config["num_boost_round"]
    checkpoint = ray.train.get_checkpoint()
    callback = _report_callback(config["report_every"], config["checkpoint_every"], config.get("kill_worker_at"))
    callback.timings = {"data_seconds": time.perf_counter() - began}   # shard transfer + DMatrix, this worker
    if checkpoint is not None:  # a replaced worker group resumes from the last checkpoint
        start = RayTrainReportCallback.get_model(checkpoint, filename=MODEL_FILE)
        callback.offset = start.num_boosted_rounds()
        rounds -= callback.offset
    params = {**config["params"], "nthread": config["nthread"]}
    if config.get("use_gpu"):
        params["device"] = xgboost_device(ray.get_gpu_ids())
    xgboost.train(params, dtrain, num_boost_round=max(rounds, 0), evals=[(dvalid, "validation")],
                  xgb_model=start, verbose_eval=False, callbacks=[callback])


@dataclasses.dataclass
class TrainedModel:
    booster: object
    rounds: int
    metrics: dict
    checkpoint_path: str

    def save(self, folder: Path) -> tuple[Path, str]:
        """Write the model as UBJSON; returns (path, sha256)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / MODEL_FILE
        self.booster.save_model(str(path))
        return path, sha256_file(path)


def train_xgboost(train: tuple[np.ndarray, np.ndarray], validation: tuple[np.ndarray, np.ndarray], *,
                  params: dict, num_boost_round: int, storage_path: str, name: str, num_workers: int = 2,
                  cpus_per_worker: float = 0.5, gpus_per_worker: float = 0.0, report_every: int = 10,
                  checkpoint_every: int = 10, max_failures: int = 2, nthread: int = 1,
                  kill_worker_at: dict | None = None) -> TrainedModel:
    """Train on `num_workers` Ray Train workers; ray must be initialised by the caller.

    kill_worker_at={"rank": r, "round": n} SIGKILLs that worker once, on the first attempt
    (used by the tests to prove recovery from the last checkpoint)."""
    import pandas as pd
    import ray
    import ray.train
    from ray.train.xgboost import RayTrainReportCallback, XGBoostTrainer

    from lakeray.train.resources import check_worker_resources

    check_worker_resources(ray.cluster_resources(), num_workers, cpus_per_worker, gpus_per_worker)

    def dataset(x, y):
        frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
        frame[LABEL] = y
        # materialized (no read competing with the workers for CPU), in one block per worker so
        # that the split hands whole blocks over instead of slicing one big block
        bounds = np.linspace(0, len(frame), max(1, min(num_workers, len(frame))) + 1).astype(int)
        return ray.data.from_pandas([frame.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:])])

    resources = {"CPU": cpus_per_worker, **({"GPU": gpus_per_worker} if gpus_per_worker else {})}
    trainer = XGBoostTrainer(
        train_loop,
        train_loop_config={"params": params, "num_boost_round": num_boost_round, "report_every": report_every,
                           "checkpoint_every": checkpoint_every, "nthread": nthread, "use_gpu": gpus_per_worker > 0,
                           "kill_worker_at": kill_worker_at},
        datasets={"train": dataset(*train), "validation": dataset(*validation)},
        scaling_config=ray.train.ScalingConfig(num_workers=num_workers, use_gpu=gpus_per_worker > 0,
                                               resources_per_worker=resources),
        run_config=ray.train.RunConfig(storage_path=storage_path, name=name,
                                       failure_config=ray.train.FailureConfig(max_failures=max_failures),
                                       checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2)),
    )
    result = trainer.fit()
    booster = RayTrainReportCallback.get_model(result.checkpoint, filename=MODEL_FILE)
    log.info("trained %d rounds on %d worker(s): %s", booster.num_boosted_rounds(), num_workers, result.metrics)
    return TrainedModel(booster, booster.num_boosted_rounds(), dict(result.metrics), result.checkpoint.path)
