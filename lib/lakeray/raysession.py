"""Connecting a job to Ray: the cluster named by RAY_ADDRESS (set by `ray job submit`) or
ray.address in conf, else a local instance started for the job and stopped after it."""

from __future__ import annotations

import contextlib
import logging
import os

log = logging.getLogger(__name__)


@contextlib.contextmanager
def ray_session(settings):
    """Yields the `ray` module, initialised; an already initialised Ray (tests) is reused."""
    import ray

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # XGBoost threads must not spin on busy cores
    if ray.is_initialized():
        yield ray
        return
    conf = settings.get("ray") or {}
    address = os.environ.get("RAY_ADDRESS") or conf.get("address") or "local"
    kwargs = {"logging_level": "WARNING"}
    if address == "local":
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")   # a private, loopback-only instance
        kwargs.update(address="local", include_dashboard=True, dashboard_host="127.0.0.1",
                      runtime_env={"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}},
                      _node_ip_address="127.0.0.1", num_cpus=conf.get("num_cpus"), num_gpus=conf.get("num_gpus"))
    else:
        kwargs["address"] = address
    ray.init(**kwargs)
    log.info("Ray at %s: %s", address, ray.cluster_resources())
    try:
        yield ray
    finally:
        ray.shutdown()
