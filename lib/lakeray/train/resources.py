"""How many training workers, of what size, and a check of that request against the Ray cluster
before Ray would wait for it forever."""

from __future__ import annotations

import dataclasses
import glob
import math

from lakeray.errors import ResourceError

AUTO = "auto"


@dataclasses.dataclass(frozen=True)
class Sizing:
    """What a training run asks of Ray: `num_workers` x (`cpus_per_worker` CPU, `gpus_per_worker`
    GPU), XGBoost running `nthread` threads in each worker."""
    num_workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    nthread: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def node_cpus(nodes: list[dict]) -> list[float]:
    """The CPU count of each alive node that has CPUs; `nodes` is ray.nodes()."""
    return [float(n["Resources"]["CPU"]) for n in nodes
            if n.get("Alive") and float(n.get("Resources", {}).get("CPU", 0)) > 0]


def resolve_sizing(cpus_by_node: list[float], num_workers: int | str, cpus_per_worker: float | str,
                   gpus_per_worker: float = 0.0) -> Sizing:
    """Turn "auto" into numbers: one worker per node that has CPUs, as many CPUs (and XGBoost
    threads) per worker as the smallest such node has. Numbers are kept as given.

    One worker per node: within a node, threads sharing memory beat processes that allreduce
    histograms every tree level (1.46x per round measured with 2 x 1 against 1 x 2 threads)."""
    if (num_workers == AUTO or cpus_per_worker == AUTO) and not cpus_by_node:
        raise ResourceError("train sizing 'auto' found no alive Ray node with CPUs")
    workers = len(cpus_by_node) if num_workers == AUTO else int(num_workers)
    cpus = min(cpus_by_node) if cpus_per_worker == AUTO else float(cpus_per_worker)
    if workers < 1 or cpus <= 0:
        raise ResourceError(f"train sizing: num_workers={num_workers!r} and cpus_per_worker={cpus_per_worker!r} "
                            "must be positive numbers or 'auto'")
    return Sizing(workers, cpus, float(gpus_per_worker), max(1, math.floor(cpus)))


ENGINES = ("auto", "ray_train", "ray_task")


def pick_engine(engine: str, sizing: Sizing) -> str:
    """auto: one Ray task where the sizing has one worker (nothing to coordinate, and no ~9 s of
    Ray Train actors starting), Ray Train's XGBoostTrainer for more."""
    if engine not in ENGINES:
        raise ResourceError(f"train.engine {engine!r} is not one of {', '.join(ENGINES)}")
    if engine == AUTO:
        return "ray_task" if sizing.num_workers == 1 else "ray_train"
    if engine == "ray_task" and sizing.num_workers != 1:
        raise ResourceError(f"train.engine ray_task trains on one worker, but num_workers is {sizing.num_workers}; "
                            "use ray_train or auto")
    return engine


def check_worker_resources(cluster: dict, num_workers: int, cpus_per_worker: float, gpus_per_worker: float,
                           cpus_by_node: list[float] | None = None) -> None:
    """Fail with a message where Ray would wait forever: GPUs that do not exist, more CPUs than
    the cluster has, or a worker larger than every node.

    `cluster` is ray.cluster_resources(); logical resources (ray.init(num_gpus=N)) count as real.
    """
    cpus, gpus = float(cluster.get("CPU", 0)), float(cluster.get("GPU", 0))
    need_gpus = num_workers * gpus_per_worker
    if need_gpus > gpus:
        raise ResourceError(
            f"training asks for {num_workers} worker(s) x {gpus_per_worker} GPU = {need_gpus:g} GPU(s), "
            f"but the Ray cluster has {gpus:g}; set use_gpu: false or gpus_per_worker lower")
    need_cpus = num_workers * cpus_per_worker
    if need_cpus > cpus:
        raise ResourceError(
            f"training asks for {num_workers} worker(s) x {cpus_per_worker} CPU = {need_cpus:g} CPU(s), "
            f"but the Ray cluster has {cpus:g}; lower num_workers or cpus_per_worker, or set them to auto")
    if cpus_by_node and cpus_per_worker > max(cpus_by_node):
        raise ResourceError(
            f"training asks for {cpus_per_worker} CPU per worker, but the largest Ray node has "
            f"{max(cpus_by_node):g}; lower cpus_per_worker or set it to auto")


def worker_params(config: dict) -> tuple[dict, int, dict]:
    """In a training worker (a Ray Train worker or the training task): the booster params with
    nthread (never more threads than the cores this process may run on: logical Ray CPUs can exceed
    them) and, with use_gpu, the device; the thread count; and {"gpus": n} for the metrics."""
    import os

    import ray

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    nthread = max(1, min(config["nthread"], cores or 1))
    params, extra = {**config["params"], "nthread": nthread}, {}
    if config.get("use_gpu"):
        params["device"] = xgboost_device(ray.get_gpu_ids())
        extra["gpus"] = len(ray.get_gpu_ids())
    return params, nthread, extra


def xgboost_device(assigned_gpu_ids: list) -> str:
    """'cuda' only where Ray assigned this task a GPU and a real device is visible; else 'cpu'
    (logical GPUs, as in the tests, keep XGBoost on the CPU)."""
    return "cuda" if assigned_gpu_ids and glob.glob("/dev/nvidia[0-9]*") else "cpu"
