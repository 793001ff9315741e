"""Connecting a job to Ray: the cluster named by RAY_ADDRESS (set by `ray job submit`) or
ray.address in conf, else a local instance started for the job and stopped after it.

A local instance is private to the machine and to its data folder. Ray's ports run arbitrary code
(CVE-2023-48022), so it is locked twice:
  - every Ray process listens on loopback only: Ray binds its gRPC servers, agents and metrics
    to the node IP, and lakeray keeps that 127.0.0.1 (ray.init would otherwise swap a loopback
    `_node_ip_address` for the machine's own address and listen on all interfaces);
  - token auth is on (RAY_AUTH_MODE=token): a random token per data folder, in
    <paths.ray_storage>/.ray_auth_token (mode 0600), handed to Ray as RAY_AUTH_TOKEN_PATH and never
    logged. From a shell: `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_AUTH_MODE=token
    RAY_AUTH_TOKEN_PATH=<that file> ray status --address 127.0.0.1:<gcs port>`.
Ray Serve's replicas open their inter-deployment gRPC port on "::" whatever the node IP (Ray
2.60); it carries Ray's token check like the rest.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from pathlib import Path

from lakeray import TELEMETRY_OFF
from lakeray.errors import ConfigError
from lakeray.lakehouse.fs import is_uri

log = logging.getLogger(__name__)

TOKEN_FILE = ".ray_auth_token"
LOOPBACK = "127.0.0.1"


def auth_token_file(settings) -> Path:
    """Where the local Ray's token lives: beside the data it guards (<paths.ray_storage>), or in
    ~/.lakeray when Ray's storage is remote (s3://...)."""
    storage = settings.path("ray_storage")
    folder = Path.home() / ".lakeray" if is_uri(storage) else Path(storage)
    return folder / TOKEN_FILE


def ensure_auth_token(path: Path) -> Path:
    """Create the token file once (0600, written atomically: concurrent jobs on one data folder
    agree on one token); an existing file readable by others is tightened to 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_hex(32).encode())
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)          # fails if another job created it meanwhile: keep theirs
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        log.info("created the local Ray's auth token file %s (mode 0600)", path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s was readable by other users (mode %o): set to 0600", path, mode)
        path.chmod(0o600)
    if not path.read_text().strip():
        raise ConfigError(f"{path}: the local Ray's auth token file is empty; delete it and run again")
    return path


def _use_token(path: Path) -> None:
    """Token auth for the Ray started by this process and every process it starts."""
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(path)
    os.environ.pop("RAY_AUTH_TOKEN", None)       # would win over the file (a remote cluster's token)
    try:   # Ray caches the mode and the token per process: a second local session reloads them
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError) as exc:    # another Ray version: the first session still works
        log.debug("could not refresh Ray's cached auth settings: %s", exc)


@contextlib.contextmanager
def scoped_env(name: str, value: str | None):
    """`name`=`value` in os.environ for the block, the previous value (or none) back after it; nothing
    changes where value is None. For settings an engine reads only from the environment."""
    if value is None:
        yield
        return
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


@contextlib.contextmanager
def _loopback_node_ip():
    """ray.init resolves a loopback `_node_ip_address` to the machine's address unless Ray thinks
    it cannot form a multi-node cluster (its Windows/macOS rule); for a private local instance
    that is exactly the case. Only this process's init sees the switch."""
    try:
        from ray._private import ray_constants
    except ImportError:
        yield
        return
    saved = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    if saved is None:
        log.warning("this Ray version has no ray_constants.ENABLE_RAY_CLUSTER: the local Ray may listen "
                    "beyond loopback (token auth is still on)")
        yield
        return
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def local_init_kwargs(settings) -> dict:
    conf = settings.get("ray") or {}
    worker_env = {"OMP_WAIT_POLICY": "PASSIVE", **{k: os.environ.get(k, v) for k, v in TELEMETRY_OFF.items()}}
    return dict(address="local", include_dashboard=True, dashboard_host=LOOPBACK, _node_ip_address=LOOPBACK,
                runtime_env={"env_vars": worker_env}, num_cpus=conf.get("num_cpus"), num_gpus=conf.get("num_gpus"),
                log_to_driver=bool(conf.get("log_to_driver", False)))


@contextlib.contextmanager
def ray_session(settings, **init_kwargs):
    """Yields the `ray` module, initialised; an already initialised Ray (tests) is reused.
    `init_kwargs` go to ray.init for a local instance (e.g. log_to_driver=False)."""
    for name, value in TELEMETRY_OFF.items():      # before ray.init reads them
        os.environ.setdefault(name, value)
    import ray

    from lakeray.console import route_to_root

    route_to_root("ray")          # Ray's own records into the run's log; the terminal shows its warnings
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # XGBoost threads must not spin on busy cores
    if ray.is_initialized():
        yield ray
        return
    conf = settings.get("ray") or {}
    address = os.environ.get("RAY_ADDRESS") or conf.get("address") or "local"
    if address == "local":
        token = ensure_auth_token(auth_token_file(settings))
        _use_token(token)
        with _loopback_node_ip():
            ray.init(logging_level="WARNING", **{**local_init_kwargs(settings), **init_kwargs})
        log.info("local Ray on %s (token auth, token file %s): %s", LOOPBACK, token, ray.cluster_resources())
    else:
        ray.init(address=address, logging_level="WARNING", log_to_driver=bool(conf.get("log_to_driver", False)))
        log.info("Ray at %s: %s", address, ray.cluster_resources())
    try:
        yield ray
    finally:
        ray.shutdown()
