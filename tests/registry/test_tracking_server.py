"""mlflow.tracking_uri pointing at a real MLflow tracking server (started here, loopback)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lakeray.errors import LakerayError
from lakeray.registry import configure_tracking
from lakeray.registry.gate import current_champion, promote
from tests.support import free_port, settings_in


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1",
                             "--port", str(port), "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
                             "--artifacts-destination", str(folder / "artifacts"), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=open(folder / "server.log", "w"))
    deadline = time.time() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"mlflow server did not start: {(folder / 'server.log').read_text()[-2000:]}")
        time.sleep(1)
    yield {"url": url, "folder": folder}
    proc.terminate()
    proc.wait(timeout=30)


def test_runs_artifacts_and_the_champion_alias_go_to_the_server(mlflow_server, tmp_path):

    settings = settings_in(tmp_path)
    settings["mlflow"]["tracking_uri"] = mlflow_server["url"]
    tracking = configure_tracking(settings, "served")
    assert tracking.tracking_uri == mlflow_server["url"]
    with tracking.start_run("train", {"lakeray.gold_version": "7"}) as run:
        run.log_text(json.dumps({"format": "x"}), "bundle/manifest.json")
    version = promote(tracking.client, tracking.model_name, run.info.run_id, {"model_sha256": "c" * 64})
    assert str(current_champion(tracking.client, tracking.model_name).version) == version
    path = tracking.download(f"models:/{tracking.model_name}@champion", tmp_path / "download")
    assert json.loads((path / "manifest.json").read_text()) == {"format": "x"}
    assert tracking.latest_run("train").data.tags["lakeray.gold_version"] == "7"
    stored = list((mlflow_server["folder"] / "artifacts").rglob("manifest.json"))
    assert len(stored) == 1                                  # the server holds the artifact...
    assert not (tmp_path / "mlflow").exists()                # ...and nothing went to the embedded store


def test_an_unreachable_server_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")    # fail fast instead of backing off for minutes
    settings = settings_in(tmp_path)
    settings["mlflow"]["tracking_uri"] = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(LakerayError, match="cannot reach the MLflow tracking store http://127.0.0.1:.*mlflow.tracking_uri"):
        configure_tracking(settings, "nowhere")
