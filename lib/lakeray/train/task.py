"""XGBoost in one Ray task: the training engine where a single worker does the job.

With one worker there is nothing for Ray Train to coordinate (no collective, one process), and
starting its controller and worker actors costs about 9 s per run on a small node
(benchmarks/README.md); a task runs in one of Ray's already started workers. It keeps what Train
gives a single worker: the CPUs/GPUs it asks for are reserved by Ray's scheduler, a UBJSON
checkpoint goes to the run's storage folder every `checkpoint_every` rounds, and a task whose
process dies is retried by Ray (`max_retries`) and resumes from the last checkpoint.
"""

from __future__ import annotations

import logging
import os
import signal
import time

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.ubj"
PROGRESS = "progress.json"          # {"round": n, "total": N}, about once a second: the driver's bar
PROGRESS_EVERY_S = 1.0


def _write_atomic(fs, path: str, data: bytes) -> None:
    """A complete file or the previous one: write beside it, then rename (an object store's put is atomic)."""
    partial = f"{path}.partial"
    with fs.open_output_stream(partial) as out:
        out.write(data)
    fs.move(partial, path)


def _read(fs, path: str) -> bytes | None:
    import pyarrow.fs

    if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(path) as stream:
        return stream.read()


def _callback(fs, checkpoint_path: str, checkpoint_every: int, offset: int, kill_at: dict | None,
              progress_path: str | None = None, total: int = 0):
    import json

    import xgboost

    class Checkpoints(xgboost.callback.TrainingCallback):
        """A checkpoint every K rounds (the last one at the end is the returned model itself), and
        the round reached about once a second for the driver's progress bar."""

        def __init__(self):
            super().__init__()
            self.seconds, self.count, self.last, self.told = 0.0, 0, {}, 0.0

        def after_iteration(self, model, epoch, evals_log):
            done = offset + epoch + 1
            if progress_path and time.monotonic() - self.told >= PROGRESS_EVERY_S:
                self.told = time.monotonic()
                _write_atomic(fs, progress_path, json.dumps({"round": done, "total": total}).encode())
            self.last = {f"{data}-{name}": float(values[-1]) for data, metrics in evals_log.items()
                         for name, values in metrics.items()}
            if checkpoint_every and done % checkpoint_every == 0:
                began = time.perf_counter()
                _write_atomic(fs, checkpoint_path, bytes(model.save_raw("ubj")))
                self.seconds += time.perf_counter() - began
                self.count += 1
            if kill_at and offset == 0 and done == kill_at["round"]:
                log.error("fault injection: killing the training task at round %d", done)
                os.kill(os.getpid(), signal.SIGKILL)
            return False

    return Checkpoints()


def _evaluate(booster, dvalid) -> dict:
    """{"validation-<metric>": value} of the model as it is ("[0]\tvalidation-auc:0.9")."""
    pairs = (item.split(":") for item in booster.eval(dvalid, "validation").split("\t")[1:])
    return {name: float(value) for name, value in pairs}


def train_task(shard: dict, config: dict, run_folder: str) -> dict:
    """The body of the task: train on shard["train"] with shard["validation"] as the eval set,
    resuming from run_folder's checkpoint where one exists; returns the model as UBJSON bytes and metrics."""
    import xgboost

    from lakeray.lakehouse.fs import arrow_filesystem
    from lakeray.models.families import dmatrix
    from lakeray.train.resources import worker_params

    began = time.perf_counter()
    params, nthread, extra = worker_params(config)
    dtrain, dvalid = (dmatrix(*shard[k], config["feature_types"], nthread) for k in ("train", "validation"))
    data_seconds = time.perf_counter() - began
    began = time.perf_counter()
    fs, root = arrow_filesystem(run_folder)
    fs.create_dir(root, recursive=True)
    checkpoint_path = f"{root}/{CHECKPOINT}"
    start, offset = None, 0
    saved = _read(fs, checkpoint_path)
    if saved is not None:       # a retry after the process died: go on from the last checkpoint
        start = xgboost.Booster()
        start.load_model(bytearray(saved))
        offset = start.num_boosted_rounds()
    callback = _callback(fs, checkpoint_path, config["checkpoint_every"], offset, config.get("kill_worker_at"),
                         f"{root}/{PROGRESS}", config["num_boost_round"])
    booster = xgboost.train(params, dtrain, num_boost_round=max(config["num_boost_round"] - offset, 0),
                            evals=[(dvalid, "validation")], xgb_model=start, verbose_eval=False,
                            callbacks=[callback])
    model = bytes(booster.save_raw("ubj"))
    began_final = time.perf_counter()
    _write_atomic(fs, checkpoint_path, model)
    last = callback.last or _evaluate(booster, dvalid)     # a retry that found every round done
    metrics = {**last, "rounds": booster.num_boosted_rounds(), "resumed_from_round": offset,
               "data_seconds": data_seconds, "nthread": nthread, "train_seconds": time.perf_counter() - began,
               "report_seconds": callback.seconds + time.perf_counter() - began_final,
               "reports": callback.count + 1, **extra}
    return {"model": model, "metrics": metrics, "checkpoint_path": checkpoint_path}


def run_train_task(shard_ref, config: dict, *, run_folder: str, cpus: float, gpus: float, max_failures: int) -> dict:
    """Submit train_task with the sizing's resources and Ray's retries on a dead process; wait for
    it, with a live bar of the rounds done on a terminal."""
    import json

    import ray

    from lakeray.console import progress
    from lakeray.lakehouse.fs import arrow_filesystem

    remote = ray.remote(train_task).options(num_cpus=cpus, num_gpus=gpus, max_retries=max_failures,
                                            retry_exceptions=False, name="lakeray-train")
    ref = remote.remote(shard_ref, config, run_folder)
    fs, root = arrow_filesystem(run_folder)
    with progress(int(config["num_boost_round"]), "train", "round") as bar:
        while not ray.wait([ref], timeout=PROGRESS_EVERY_S)[0]:
            if bar.disable:
                continue
            told = _read(fs, f"{root}/{PROGRESS}")
            if told:
                bar.update(max(0, json.loads(told)["round"] - bar.n))
    return ray.get(ref)
