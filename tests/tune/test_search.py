"""Model selection: Optuna over families + ASHA on a real local Ray, and resume after a kill."""

from __future__ import annotations

import pytest

from lakeray.errors import ConfigError
from lakeray.spec import spec_hash
from lakeray.tune.search import format_leaderboard, run_tune, tune_settings
from tests.conftest import settings_in, synthetic_snapshot


def _settings(tmp_path, **tune):
    settings = settings_in(tmp_path)
    settings["tune"].update(tune)
    return settings


def test_search_covers_every_family_and_ranks_by_the_spec_metric(ray_local, tmp_path, churn_spec):
    settings = _settings(tmp_path, num_samples=9, seed=3, rounds_scale=0.25,
                         scheduler={"grace_period": 1, "reduction_factor": 2})
    settings["tune"]["families"]["xgboost"]["num_samples"] = 6
    snapshot = synthetic_snapshot(churn_spec, rows=1200)
    # one trial at a time: Optuna's seeded draws and single-threaded XGBoost make the run deterministic
    outcome = run_tune(churn_spec, settings, snapshot, spec_digest=spec_hash(churn_spec), smoke=False,
                       max_concurrent=1)
    board = outcome.leaderboard
    assert len(board) == 3 + 3 + 6 and not outcome.restored     # an even share each, xgboost's own count
    assert set(outcome.experiment_paths) == {"xgboost", "random_forest", "logistic"}
    assert {r["family"] for r in board} == {"xgboost", "random_forest", "logistic"}
    scores = [r["score"] for r in board]
    assert scores == sorted(scores, reverse=True)            # roc_auc: higher is better
    assert board[0]["score"] > 0.75                          # the synthetic target is learnable
    for row in board:
        space = settings["tune"]["families"][row["family"]]["space"]
        assert set(row["params"]) == set(space)
        for name, dist in space.items():
            assert dist["low"] <= row["params"][name] <= dist["high"]
    # ASHA (rungs at 1, 2 and 4 reports of 5) stopped some xgboost trials before their last round
    assert any(r["stopped_early"] for r in board if r["family"] == "xgboost")
    assert not any(r["stopped_early"] for r in board if r["family"] == "random_forest")   # one round: nothing to stop
    text = format_leaderboard(board, "roc_auc")
    assert text.splitlines()[1].split()[1] == board[0]["family"]


def test_bad_search_space_is_named(tmp_path):
    settings = _settings(tmp_path)
    settings["tune"]["families"]["xgboost"]["space"]["eta"] = {"type": "lognormal", "low": 0.1, "high": 1}
    with pytest.raises(ConfigError, match="tune.families.xgboost.space.eta: type must be one of"):
        tune_settings(settings)
    settings = _settings(tmp_path)
    settings["tune"]["families"]["svm"] = {"rounds": 1, "space": {}}
    with pytest.raises(ConfigError, match="unknown family \\['svm'\\]"):
        tune_settings(settings)
