"""HAProxy started through lakeray's launcher dies with the process that started it (Ray's HAProxy
manager actor): a real HAProxy, a real parent process killed with SIGKILL. Ray's manager kills only
the HAProxy processes it knows; one a reload was starting when Serve shut down lived on, holding the
stats (8404) and Prometheus (9101) ports, and the next Serve's HAProxy could not bind them (CI failed
so on stop 33). Ray's binary started directly, for contrast, outlives its parent."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil
import pytest

from lakeray.serve.ingress import LOOPBACK_ENV, launch, launcher_path
from tests.support import free_port

pytestmark = pytest.mark.fast

CONFIG = """global
    maxconn 10
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend http_frontend
    bind 127.0.0.1:{port}
    http-request return status 200 content-type text/plain string ok
"""

# a parent that starts the command, says the child's pid, and waits to be killed
PARENT = ("import subprocess, sys, time; "
          "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
          "print(child.pid, flush=True); time.sleep(600)")


def _listeners(port: int) -> list[int | None]:
    """Pids of the processes listening on the port (None where the system does not say whose)."""
    return [conn.pid for conn in psutil.net_connections(kind="tcp")
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port]


def _haproxy_listeners(port: int) -> set[int]:
    """Pids of the HAProxy processes listening on the port. Whether the port merely answers is not
    asked: in a full run other processes (Ray, Spark) bind ephemeral ports all the time, and one that
    took this port before or after HAProxy would answer for it (CI failed so once)."""
    pids = set()
    for pid in filter(None, _listeners(port)):
        try:
            if psutil.Process(pid).name() == "haproxy":
                pids.add(pid)
        except psutil.NoSuchProcess:
            pass
    return pids


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _haproxy_under_a_killed_parent(tmp_path, command_of, attempts: int = 3) -> tuple[bool, bool]:
    """(whether HAProxy still runs 10 s after its parent was SIGKILLed, whether a HAProxy still
    listens on its port); a HAProxy that survived is killed before returning. A HAProxy that could
    not bind because another process took the free port first is tried again on another port."""
    for _ in range(attempts - 1):
        outcome = _one_try(tmp_path, command_of, retry_if_taken=True)
        if outcome is not None:
            return outcome
    return _one_try(tmp_path, command_of, retry_if_taken=False)


def _one_try(tmp_path, command_of, retry_if_taken: bool) -> tuple[bool, bool] | None:
    """_haproxy_under_a_killed_parent on one free port; None when HAProxy exited because another
    process listens there (and `retry_if_taken`)."""
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(port=port))
    parent = subprocess.Popen([sys.executable, "-c", PARENT, *command_of(config)],
                              stdout=subprocess.PIPE, text=True)
    haproxy = int(parent.stdout.readline())
    try:
        deadline = time.monotonic() + 10
        while _haproxy_listeners(port) != {haproxy}:        # the pid the parent started listens: it is HAProxy
            if not _alive(haproxy) and retry_if_taken and _listeners(port):
                return None
            assert _alive(haproxy), "HAProxy exited before it listened"
            assert time.monotonic() < deadline, "HAProxy did not listen"
            time.sleep(0.1)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(haproxy) and time.monotonic() < deadline:
            time.sleep(0.1)
        return _alive(haproxy), bool(_haproxy_listeners(port))
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        if _alive(haproxy):
            psutil.Process(haproxy).kill()


def test_haproxy_through_the_launcher_dies_with_its_parent(tmp_path, monkeypatch):
    monkeypatch.delenv(LOOPBACK_ENV, raising=False)
    survived, listening = _haproxy_under_a_killed_parent(
        tmp_path, lambda config: [launcher_path(), "-db", "-f", str(config)])
    assert not survived and not listening               # no HAProxy holds its port for the next one


def test_haproxy_started_directly_outlives_its_parent(tmp_path, monkeypatch):
    """Why the launcher asks for it: Ray's HAProxy on its own is orphaned, not stopped."""
    monkeypatch.delenv(LOOPBACK_ENV, raising=False)
    survived, listening = _haproxy_under_a_killed_parent(tmp_path, lambda config: launch(["-db", "-f", str(config)]))
    assert survived and listening
