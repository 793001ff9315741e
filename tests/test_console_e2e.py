"""`lakeray run --smoke-test` as a user runs it: the terminal shows lakeray's story in a few dozen
lines and ends with the summary; the engines' detail is in the run's log file, not on the terminal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

LINE_BUDGET = 60
PATHS = {"landing": "LAKERAY_LANDING", "lakehouse": "LAKERAY_LAKEHOUSE", "checkpoints": "LAKERAY_CHECKPOINTS",
         "ray": "LAKERAY_RAY_STORAGE", "models": "LAKERAY_MODELS", "mlflow": "LAKERAY_MLFLOW_DIR", "logs": "LAKERAY_LOGS"}
ENGINE_NOISE = ("Checkpoint successfully created", "Configuration for experiment", "A new study created",
                "Downloading artifacts", "View detailed results", "(trial pid=", "Dataset execution")


@pytest.mark.e2e
def test_run_smoke_test_prints_its_story_within_the_line_budget(tmp_path):
    lakeray = str(Path(sys.executable).parent / "lakeray")
    env = {k: v for k, v in os.environ.items() if k != "LAKERAY_MLFLOW_URI"}
    env.update({var: str(tmp_path / name) for name, var in PATHS.items()})
    subprocess.run([lakeray, "generate", "--pipeline", "pipelines/telco.yaml", "--rows", "600", "--log-level", "WARNING"],
                   cwd=ROOT, env=env, check=True, timeout=300)
    done = subprocess.run([lakeray, "run", "pipelines/telco.yaml", "--smoke-test"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    terminal = done.stdout + done.stderr
    assert done.returncode in (0, 3), terminal            # 3: the smoke-sized candidate may fail the gate
    lines = terminal.splitlines()
    assert len(lines) <= LINE_BUDGET, f"{len(lines)} lines:\n{terminal}"
    assert not [n for n in ENGINE_NOISE if n in terminal], terminal
    summary = done.stdout.splitlines()
    assert summary[0] == "lakeray run telco" and set(summary[1]) == {"-"}
    assert {line.split()[0] for line in summary[2:]} >= {"read", "accounted", "wrote", "searched", "trained",
                                                          "evaluated", "report", "champion"}
    logs = list((tmp_path / "logs").glob("run-telco-*.log"))
    assert len(logs) == 1 and f"full log: {logs[0]}" in done.stderr
    kept = logs[0].read_text()
    for detail in (r"INFO lakeray\.ingest\.run: ingest customers \(csv\): 600 new row", r"INFO lakeray\.lakehouse\.delta: wrote",
                   r"INFO lakeray\.train\.xgb: trained \d+ rounds with ray_task", r"INFO lakeray\.spark\.session: spark "):
        assert re.search(detail, kept), detail
    assert len(kept.splitlines()) > len(lines)
