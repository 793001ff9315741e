"""The local Ray that lakeray starts for a job: loopback only, token auth, no usage stats.

Each test runs the session in a fresh process, as a user's job does (the suite's own Ray would
otherwise be reused), and inspects that process's Ray from outside."""

from __future__ import annotations

import ipaddress
import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from lakeray.raysession import TOKEN_FILE, ensure_auth_token
from tests.support import ROOT

pytestmark = pytest.mark.e2e

SESSION = textwrap.dedent("""
    import json, os, sys
    from lakeray.raysession import ray_session
    from tests.support import settings_in
    from pathlib import Path

    settings = settings_in(Path(sys.argv[1]))
    settings["ray"]["num_cpus"] = 1
    with ray_session(settings) as ray:
        ray.get(ray.remote(lambda: 1).remote())          # a worker process with its own gRPC port
        from ray._common.usage import usage_lib
        print(json.dumps({"gcs": ray.get_runtime_context().gcs_address, "node_ip": ray.util.get_node_ip_address(),
                          "usage_stats": usage_lib.usage_stats_enabled()}), flush=True)
        sys.stdin.readline()                              # hold the session until the test is done
""")


def user_env() -> dict:
    """The environment of a user's shell: none of the suite's Ray/MLflow/auth variables."""
    drop = ("RAY_", "MLFLOW_", "DO_NOT_TRACK", "PYTEST_", "LAKERAY_")
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)} | {"PYTHONPATH": path}


def is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


def listening(procs) -> list[tuple[str, str, int]]:
    import psutil

    out = []
    for proc in procs:
        try:
            out += [(proc.name(), c.laddr.ip, c.laddr.port) for c in proc.net_connections(kind="inet")
                    if c.status == psutil.CONN_LISTEN]
        except psutil.Error:
            pass
    return out


def grpc_code(port: int, metadata=None, method: str = "/ray.rpc.NodeManagerService/GetNodeStats") -> str:
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            channel.unary_unary(method)(b"", timeout=10, metadata=metadata)
            return "OK"
        except grpc.RpcError as exc:
            return exc.code().name


# Ray's services that may listen beyond loopback (Ray binds some servers to "::" whatever the node
# IP); a method each, since a server routes a call before it checks the token
AUTH_PROBES = ("/ray.rpc.NodeManagerService/GetNodeStats", "/ray.serve.ASGIService/HandleRequest")


def open_to_the_network(procs) -> list[tuple[str, str, int]]:
    """Listening sockets of `procs` beyond loopback that answer a call without the token."""
    return [s for s in listening(procs) if not is_loopback(s[1])
            and not any(grpc_code(s[2], method=m) == "UNAUTHENTICATED" for m in AUTH_PROBES)]


@pytest.fixture(scope="module")
def local_session(tmp_path_factory):
    import psutil

    folder = tmp_path_factory.mktemp("session")
    proc = subprocess.Popen([sys.executable, "-c", SESSION, str(folder)], cwd=ROOT, env=user_env(), text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline()
        assert line, f"the session did not start:\n{proc.stderr.read()[-4000:]}"
        driver = psutil.Process(proc.pid)
        yield {"info": json.loads(line), "procs": [driver, *driver.children(recursive=True)], "folder": folder}
    finally:
        out, err = proc.communicate("\n", timeout=120)
    assert proc.returncode == 0, err[-4000:]
    token = (folder / "ray_storage" / TOKEN_FILE).read_text().strip()
    assert token not in out + err                      # the token is never printed or logged


def test_every_ray_port_of_a_local_session_is_on_loopback(local_session):
    names = {p.name() for p in local_session["procs"]}
    assert {"gcs_server", "raylet"} <= names and any(n.startswith("ray::") for n in names), names
    sockets = listening(local_session["procs"])
    assert {name for name, _, _ in sockets} >= {"gcs_server", "raylet"}
    assert [s for s in sockets if not is_loopback(s[1])] == []
    assert local_session["info"]["node_ip"] == "127.0.0.1"
    assert local_session["info"]["gcs"].startswith("127.0.0.1:")


def test_a_client_without_the_token_is_refused(local_session):
    token_file = local_session["folder"] / "ray_storage" / TOKEN_FILE
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    raylet = next(p for p in local_session["procs"] if p.name() == "raylet")
    assert raylet.environ()["RAY_AUTH_MODE"] == "token"
    ports = [port for name, _, port in listening([raylet])]
    codes = {port: grpc_code(port) for port in ports}
    assert "UNAUTHENTICATED" in codes.values(), codes                  # the raylet's node manager
    assert "OK" not in codes.values(), codes
    bearer = [("authorization", f"Bearer {token_file.read_text().strip()}")]
    assert "OK" in {grpc_code(port, bearer) for port in ports}         # the same call with the token works


def test_ray_usage_stats_are_off(local_session):
    assert local_session["info"]["usage_stats"] is False


def test_auth_token_file_is_created_once_and_kept_private(tmp_path):
    path = ensure_auth_token(tmp_path / "data" / TOKEN_FILE)
    token = path.read_text()
    assert len(token) == 64 and stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    assert ensure_auth_token(path).read_text() == token                 # the same token for the data folder
    assert stat.S_IMODE(path.stat().st_mode) == 0o600                   # tightened
