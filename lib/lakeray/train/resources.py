"""Check what a job asks of the Ray cluster before Ray would wait for it forever."""

from __future__ import annotations

import glob

from lakeray.errors import ResourceError


def check_worker_resources(cluster: dict, num_workers: int, cpus_per_worker: float, gpus_per_worker: float,
                           data_cpus: float = 0.5) -> None:
    """Fail with a message where Ray would hang: GPUs that do not exist, or no CPU left for Ray Data.

    `cluster` is ray.cluster_resources(); logical resources (ray.init(num_gpus=N)) count as real.
    """
    cpus, gpus = float(cluster.get("CPU", 0)), float(cluster.get("GPU", 0))
    need_gpus = num_workers * gpus_per_worker
    if need_gpus > gpus:
        raise ResourceError(
            f"training asks for {num_workers} worker(s) x {gpus_per_worker} GPU = {need_gpus:g} GPU(s), "
            f"but the Ray cluster has {gpus:g}; set use_gpu: false or gpus_per_worker lower")
    need_cpus = num_workers * cpus_per_worker + data_cpus
    if need_cpus > cpus:
        raise ResourceError(
            f"training asks for {num_workers} worker(s) x {cpus_per_worker} CPU plus {data_cpus} CPU for "
            f"Ray Data = {need_cpus:g} CPU(s), but the Ray cluster has {cpus:g}: the dataset read would "
            "stall behind the workers; lower num_workers or cpus_per_worker")


def xgboost_device(assigned_gpu_ids: list) -> str:
    """'cuda' only where Ray assigned this task a GPU and a real device is visible; else 'cpu'
    (logical GPUs, as in the tests, keep XGBoost on the CPU)."""
    return "cuda" if assigned_gpu_ids and glob.glob("/dev/nvidia[0-9]*") else "cpu"
