"""Data-parallel XGBoost on real Ray Train workers, checked against plain xgboost.train."""

from __future__ import annotations

import numpy as np
import xgboost
from sklearn.metrics import roc_auc_score

from lakeray.train.xgb import sha256_file, train_xgboost

PARAMS = {"objective": "binary:logistic", "eval_metric": "auc", "max_depth": 4, "eta": 0.3}


def _data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = ((x[:, 0] + 0.5 * x[:, 1] * x[:, 2] + rng.normal(scale=0.5, size=n)) > 0).astype(np.float32)
    return x, y


def test_two_workers_train_a_model_as_good_as_plain_xgboost(ray_local, tmp_path):
    train, valid = _data(6000, 1), _data(2000, 2)
    model = train_xgboost(train, valid, params=PARAMS, num_boost_round=20, storage_path=str(tmp_path),
                          name="t", num_workers=2, cpus_per_worker=0.5, report_every=5, checkpoint_every=15)
    assert model.rounds == 20        # round 20 is no multiple of 15: the end-of-training checkpoint holds it
    assert model.metrics["rounds"] == 20 and model.metrics["validation-auc"] > 0.85
    auc = roc_auc_score(valid[1], model.booster.predict(xgboost.DMatrix(valid[0])))
    plain = xgboost.train({**PARAMS, "nthread": 2}, xgboost.DMatrix(train[0], label=train[1]), num_boost_round=20)
    plain_auc = roc_auc_score(valid[1], plain.predict(xgboost.DMatrix(valid[0])))
    assert abs(auc - plain_auc) < 0.02
    path, digest = model.save(tmp_path / "out")
    assert path.name == "model.ubj" and digest == sha256_file(path) and len(digest) == 64
    loaded = xgboost.Booster(model_file=str(path))
    np.testing.assert_allclose(loaded.predict(xgboost.DMatrix(valid[0])), model.booster.predict(xgboost.DMatrix(valid[0])))


def test_killed_worker_resumes_from_the_last_checkpoint(ray_local, tmp_path):
    train, valid = _data(4000, 3), _data(1000, 4)
    model = train_xgboost(train, valid, params=PARAMS, num_boost_round=20, storage_path=str(tmp_path),
                          name="killed", num_workers=2, cpus_per_worker=0.5, report_every=5, checkpoint_every=10,
                          max_failures=1, kill_worker_at={"rank": 1, "round": 13})
    assert model.rounds == 20
    assert model.metrics["resumed_from_round"] == 10      # restarted from the round-10 checkpoint, not from 0
    assert model.metrics["validation-auc"] > 0.85
