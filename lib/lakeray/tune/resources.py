"""GPU-aware trial resources: what each trial asks of Ray, and which device XGBoost uses."""

from __future__ import annotations

from lakeray.errors import ResourceError
from lakeray.train.resources import xgboost_device

__all__ = ["trial_resources", "xgboost_device"]


def trial_resources(cpu: float, gpu: float, cluster: dict) -> dict:
    """Resources for tune.with_resources, checked against ray.cluster_resources().

    Fractional GPUs (0.5, 0.25) share a device between trials; more than one GPU must be whole.
    Logical GPUs (ray.init(num_gpus=N)) count, so scheduling can be tested without hardware.
    """
    if cpu <= 0:
        raise ResourceError(f"trial cpu must be > 0 (Ray Tune cannot schedule an all-zero request), got {cpu}")
    if gpu < 0 or (gpu > 1 and gpu != int(gpu)):
        raise ResourceError(f"trial gpu must be a fraction up to 1 or a whole number, got {gpu}")
    have = float(cluster.get("GPU", 0))
    if gpu > have:
        raise ResourceError(f"each trial asks for {gpu:g} GPU but the Ray cluster has {have:g}: "
                            "trials would wait forever; set gpu: 0 in the tuning config")
    if cpu > float(cluster.get("CPU", 0)):
        raise ResourceError(f"each trial asks for {cpu:g} CPU but the Ray cluster has {cluster.get('CPU', 0):g}")
    return {"cpu": cpu, "gpu": gpu} if gpu else {"cpu": cpu}

