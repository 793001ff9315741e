"""The one orchestrator: the stage order, and the retrain decision taken by the caller of the drift job."""

from __future__ import annotations

import pytest

from lakeray.lifecycle import STAGES, retrain_after_drift, stages_through
from lakeray.monitor.job import DriftOutcome
from tests.support import settings_in

pytestmark = pytest.mark.fast


def _outcome(drifted_columns=(), performance=None):
    from lakeray.monitor.drift import ColumnDrift

    columns = [ColumnDrift(c, "numeric", {"psi": 0.5}, {"psi": 0.2}, ("psi",), 10, 0.0) for c in drifted_columns]
    return DriftOutcome("run", None, None, 10, columns, performance, bool(drifted_columns), None)


def test_stages_run_in_one_order():
    assert STAGES == ("ingest", "prepare", "tune", "train", "evaluate")
    assert stages_through("tune") == ("ingest", "prepare", "tune")


def test_no_retrain_without_drift_or_without_the_setting(tmp_path, churn_spec):
    settings = settings_in(tmp_path)
    settings["drift"]["retrain"] = {"enabled": True, "smoke": True}
    assert not _outcome().any_drift
    assert retrain_after_drift(None, churn_spec, settings, _outcome()) is None          # nothing drifted
    settings["drift"]["retrain"] = {"enabled": False, "smoke": True}
    drifted = _outcome(["monthly_charges"])
    assert drifted.any_drift and retrain_after_drift(None, churn_spec, settings, drifted) is None   # not enabled
    assert _outcome(performance={"drifted": True}).any_drift                            # realised performance alone
