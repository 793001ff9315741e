"""The promotion gate (pure checks) and the champion alias in a real SQLite-backed registry."""

from __future__ import annotations

import pytest

from lakeray.registry import configure_tracking
from lakeray.registry.gate import CHAMPION, PREVIOUS, current_champion, gate_checks, promote
from lakeray.spec.models import Baseline, Metric
from tests.support import settings_in


def _by_name(checks):
    return {c.check: c for c in checks}


def test_thresholds_baseline_and_champion_margins(churn_spec):
    spec = churn_spec.model_copy(update={"metric": Metric(primary="roc_auc", thresholds={"roc_auc": 0.7, "log_loss": 0.5}),
                                         "baseline": Baseline(model="logistic", margin=0.01, champion_margin=0.002)})
    candidate = {"roc_auc": 0.80, "log_loss": 0.45}
    checks = _by_name(gate_checks(spec, candidate, {"roc_auc": 0.785}, {"roc_auc": 0.7985}))
    assert checks["threshold roc_auc"].passed and checks["threshold log_loss"].passed   # log_loss: lower is better
    assert checks["beats baseline"].passed                 # +0.015 >= 0.01
    assert not checks["beats champion"].passed             # +0.0015 < 0.002
    assert "improvement +0.0015" in checks["beats champion"].detail
    checks = _by_name(gate_checks(spec, {"roc_auc": 0.80, "log_loss": 0.55}, {"roc_auc": 0.795}, None))
    assert not checks["threshold log_loss"].passed and "<= 0.5 required" in checks["threshold log_loss"].detail
    assert not checks["beats baseline"].passed              # +0.005 < 0.01
    assert checks["beats champion"].passed and "no current champion" in checks["beats champion"].detail


def test_equal_to_the_champion_is_not_better(churn_spec):
    checks = _by_name(gate_checks(churn_spec, {"roc_auc": 0.9, "recall": 0.9}, {"roc_auc": 0.5}, {"roc_auc": 0.9}))
    assert not checks["beats champion"].passed


def test_lower_is_better_primary_metric(churn_spec):
    spec = churn_spec.model_copy(update={"metric": Metric(primary="log_loss", thresholds={}),
                                         "baseline": Baseline(model="majority", margin=0.0, champion_margin=0.0)})
    checks = _by_name(gate_checks(spec, {"log_loss": 0.3}, {"log_loss": 0.6}, {"log_loss": 0.25}))
    assert checks["beats baseline"].passed and not checks["beats champion"].passed


def test_promote_moves_champion_and_keeps_the_previous_one(tmp_path):
    import mlflow

    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    tracking = configure_tracking(settings_in(tmp_path), "gatetest")
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == before      # nothing process-wide
    assert tracking.tracking_uri == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    runs = []
    for _ in range(2):
        with tracking.start_run("train", {}) as run:
            run.log_text("{}", "bundle/manifest.json")
            runs.append(run.info.run_id)
    assert current_champion(tracking.client, tracking.model_name) is None
    first = promote(tracking.client, tracking.model_name, runs[0], {"model_sha256": "a" * 64})
    second = promote(tracking.client, tracking.model_name, runs[1], {"model_sha256": "b" * 64})
    champion = current_champion(tracking.client, tracking.model_name)
    assert (str(champion.version), champion.run_id, champion.tags["model_sha256"]) == (second, runs[1], "b" * 64)
    assert str(tracking.client.get_model_version_by_alias(tracking.model_name, PREVIOUS).version) == first
    assert CHAMPION in tracking.client.get_model_version(tracking.model_name, second).aliases
    assert tracking.latest_run("train").info.run_id == runs[1]
    with pytest.raises(Exception, match="no finished 'tune' run for pipeline 'gatetest'"):
        tracking.latest_run("tune")


def test_a_champion_downloads_from_its_own_registry_after_another_pipeline_moved_mlflow(tmp_path):
    """MLflow resolves models:/ URIs through its process-global registry URI, which another library
    (or a test) may move: lakeray resolves through the pipeline's own client, and sets none itself."""
    import mlflow

    saved = mlflow.get_registry_uri()
    mlflow.set_registry_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")     # someone else's process-wide choice
    try:
        _download_from_own_registry(tmp_path)
    finally:
        mlflow.set_registry_uri(saved)


def _download_from_own_registry(tmp_path):

    tracking = configure_tracking(settings_in(tmp_path / "a"), "ownregistry")
    with tracking.start_run("train", {}) as run:
        run.log_text('{"which": "a"}', "bundle/manifest.json")
    version = promote(tracking.client, tracking.model_name, run.info.run_id, {"model_sha256": "a" * 64})
    configure_tracking(settings_in(tmp_path / "b"), "elsewhere")     # another store in the same process
    for uri in (f"models:/{tracking.model_name}@{CHAMPION}", f"models:/{tracking.model_name}/{version}"):
        folder = tracking.download(uri, tmp_path / "download" / uri.replace("/", "_").replace(":", "_").replace("@", "_"))
        assert (folder / "manifest.json").read_text() == '{"which": "a"}'
