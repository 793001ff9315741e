"""Model selection: Optuna over families + ASHA on a real local Ray, and resume after a kill."""

from __future__ import annotations

import os

import numpy as np
import pytest

from lakeray.errors import ConfigError
from lakeray.spec import spec_hash
from lakeray.tune.search import (
    CHECKPOINT_PERIOD_ENV,
    format_leaderboard,
    rank,
    run_tune,
    samples_per_family,
    tune_settings,
)
from lakeray.tune.trainable import is_degenerate, stopping_metric
from tests.support import settings_in, synthetic_snapshot


def _settings(tmp_path, **tune):
    settings = settings_in(tmp_path)
    settings["tune"].update(tune)
    return settings


def test_search_covers_every_family_and_ranks_by_the_spec_metric(ray_local, tmp_path, churn_spec, caplog):
    settings = _settings(tmp_path, num_samples=9, seed=3, rounds_scale=0.25, early_stopping_rounds=10,
                         scheduler={"grace_period": 1, "reduction_factor": 2})
    settings["tune"]["families"]["xgboost"]["num_samples"] = 6
    # an L1 penalty this strong zeroes every gblinear weight: constant predictions, reported, ranked last
    settings["tune"]["families"]["logistic"]["space"]["alpha"] = {"type": "loguniform", "low": 5, "high": 10}
    snapshot = synthetic_snapshot(churn_spec, rows=1200)
    period_before = os.environ.get(CHECKPOINT_PERIOD_ENV)
    # one trial at a time: Optuna's seeded draws and single-threaded XGBoost make the run deterministic
    outcome = run_tune(churn_spec, settings, snapshot, spec_digest=spec_hash(churn_spec), smoke=False,
                       max_concurrent=1)
    board = outcome.leaderboard
    assert os.environ.get(CHECKPOINT_PERIOD_ENV) == period_before     # set for the search only
    assert len(board) == 1 + 1 + 6 and not outcome.restored     # a 10% share each of 9 (at least 1), xgboost's own count
    assert set(outcome.experiment_paths) == {"xgboost", "random_forest", "logistic"}
    assert {r["family"] for r in board} == {"xgboost", "random_forest", "logistic"}
    assert board[-1]["family"] == "logistic" and board[-1]["degenerate"]
    assert not any(r["degenerate"] for r in board[:-1])
    scores = [r["score"] for r in board[:-1]]
    assert scores == sorted(scores, reverse=True)            # roc_auc: higher is better
    assert board[0]["score"] > 0.75 and board[0]["family"] != "logistic"   # the synthetic target is learnable
    for row in board:
        space = settings["tune"]["families"][row["family"]]["space"]
        assert set(row["params"]) == set(space)
        for name, dist in space.items():
            assert dist["low"] <= row["params"][name] <= dist["high"]
    boosted = [r for r in board if r["family"] == "xgboost"]
    assert all(r["round_cap"] == 750 for r in boosted)       # 3000 x 0.25
    # on 1,200 rows every boosted trial stops long before its cap: early stopping (patience 10) or ASHA
    assert all(r["rounds"] < 750 and r["stopped"] in ("early_stopping", "scheduler") for r in boosted)
    assert any(r["stopped"] == "early_stopping" for r in boosted)
    assert not any(r["stopped_early"] for r in board if r["family"] == "random_forest")   # one round: nothing to stop
    text = format_leaderboard(board, "roc_auc")
    assert text.splitlines()[1].split()[1] == board[0]["family"]
    assert "degenerate" in text.splitlines()[-1]
    # the progress callback's line per family (its bar is off: stderr is no terminal here)
    done = {r.getMessage().split(":")[0].split()[-1]: r.getMessage() for r in caplog.records
            if r.name == "lakeray.tune.search" and r.getMessage().startswith("searched")}
    assert set(done) == {"xgboost", "random_forest", "logistic"}
    best_xgb = max(r["score"] for r in boosted)
    assert "6 of 6 trial(s)" in done["xgboost"] and f"best roc_auc {best_xgb:.4f}" in done["xgboost"]


@pytest.mark.fast
def test_budget_gives_baselines_a_fixed_share_and_the_rest_to_boosting(tmp_path):
    conf = tune_settings(_settings(tmp_path, num_samples=40))
    assert samples_per_family(conf) == {"logistic": 4, "random_forest": 4, "xgboost": 32}
    conf = tune_settings(_settings(tmp_path), smoke=True)
    assert samples_per_family(conf) == {"logistic": 1, "random_forest": 1, "xgboost": 4}
    settings = _settings(tmp_path, num_samples=10)
    settings["tune"]["families"]["logistic"]["num_samples"] = 3     # an explicit count wins over the share
    assert samples_per_family(tune_settings(settings)) == {"logistic": 3, "random_forest": 1, "xgboost": 6}


@pytest.mark.fast
def test_search_space_follows_the_training_rows(tmp_path):
    settings = _settings(tmp_path)
    depth = {rows: tune_settings(settings, rows=rows)["families"]["xgboost"]["space"]["max_depth"]
             for rows in (1_000, 50_000, 3_000_000)}
    assert [(d["low"], d["high"]) for d in depth.values()] == [(2, 6), (3, 8), (4, 10)]
    assert all("by_rows" not in d for d in depth.values())
    settings["tune"]["families"]["xgboost"]["space"]["eta"]["by_rows"] = {10: {"type": "int"}}
    with pytest.raises(ConfigError, match="space.eta.by_rows.10: only low, high and values may change"):
        tune_settings(settings, rows=100)


@pytest.mark.fast
def test_early_stopping_watches_the_spec_metric_where_xgboost_has_it():
    assert stopping_metric("binary", "roc_auc") == "auc" and stopping_metric("binary", "f1") == "logloss"
    assert stopping_metric("multiclass", "accuracy") == "merror" and stopping_metric("regression", "r2") == "rmse"
    assert is_degenerate(np.full(10, 0.3)) and not is_degenerate(np.array([0.1, 0.2]))
    board = [{"score": 0.9, "degenerate": True}, {"score": 0.6}, {"score": 0.7, "degenerate": False}]
    assert [r["score"] for r in rank(board, True)] == [0.7, 0.6, 0.9]
    assert [r["score"] for r in rank(board, False)] == [0.6, 0.7, 0.9]


@pytest.mark.fast
def test_bad_search_space_is_named(tmp_path):
    settings = _settings(tmp_path)
    settings["tune"]["families"]["xgboost"]["space"]["eta"] = {"type": "lognormal", "low": 0.1, "high": 1}
    with pytest.raises(ConfigError, match="tune.families.xgboost.space.eta: type must be one of"):
        tune_settings(settings)
    settings = _settings(tmp_path)
    settings["tune"]["families"]["svm"] = {"rounds": 1, "space": {}}
    with pytest.raises(ConfigError, match="unknown family \\['svm'\\]"):
        tune_settings(settings)
