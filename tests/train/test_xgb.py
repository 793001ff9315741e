"""Data-parallel XGBoost on real Ray Train workers, checked against plain xgboost.train.

ray_local has 4 logical CPUs (on 2 cores) and 2 logical GPUs."""

from __future__ import annotations

import json

import numpy as np
import scipy.sparse
import xgboost
from sklearn.metrics import roc_auc_score

from lakeray.models.families import dmatrix
from lakeray.train.resources import Sizing
from lakeray.train.task import CHECKPOINT, PROGRESS
from lakeray.train.xgb import sha256_file, shard_bounds, train_xgboost

PARAMS = {"objective": "binary:logistic", "eval_metric": "auc", "max_depth": 4, "eta": 0.3}


def _data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = ((x[:, 0] + 0.5 * x[:, 1] * x[:, 2] + rng.normal(scale=0.5, size=n)) > 0).astype(np.float32)
    return x, y


def _categorical(n, seed, good):
    """Column 0: one of 30 category codes (NaN missing); the target is membership in `good`, 5% flipped.
    Column 1: noise. As a number the code carries little signal; as a category, all of it."""
    rng = np.random.default_rng(seed)
    code = rng.integers(0, 30, n).astype(np.float32)
    y = (np.isin(code, good) ^ (rng.random(n) < 0.05)).astype(np.float32)
    code[rng.random(n) < 0.03] = np.nan
    return np.c_[code, rng.normal(size=n).astype(np.float32)], y


def test_shards_are_contiguous_and_cover_every_row():
    assert shard_bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert shard_bounds(5, 1) == [(0, 5)]


def test_two_workers_train_a_model_as_good_as_plain_xgboost(ray_local, tmp_path):
    train, valid = _data(6000, 1), _data(2000, 2)
    model = train_xgboost(train, valid, params=PARAMS, num_boost_round=20, storage_path=str(tmp_path),
                          name="t", num_workers=2, cpus_per_worker=0.5, checkpoint_every=15)
    assert model.sizing == Sizing(num_workers=2, cpus_per_worker=0.5, gpus_per_worker=0.0, nthread=1)
    assert model.engine == "ray_train"
    assert model.rounds == 20        # round 20 is no multiple of 15: the end-of-training checkpoint holds it
    assert model.metrics["rounds"] == 20 and model.metrics["validation-auc"] > 0.85
    assert model.metrics["reports"] == 2            # rounds 15 and 20, nothing in between
    auc = roc_auc_score(valid[1], model.booster.predict(xgboost.DMatrix(valid[0])))
    plain = xgboost.train({**PARAMS, "nthread": 2}, xgboost.DMatrix(train[0], label=train[1]), num_boost_round=20)
    plain_auc = roc_auc_score(valid[1], plain.predict(xgboost.DMatrix(valid[0])))
    assert abs(auc - plain_auc) < 0.02
    path, digest = model.save(tmp_path / "out")
    assert path.name == "model.ubj" and digest == sha256_file(path) and len(digest) == 64
    loaded = xgboost.Booster(model_file=str(path))
    np.testing.assert_allclose(loaded.predict(xgboost.DMatrix(valid[0])), model.booster.predict(xgboost.DMatrix(valid[0])))


def test_one_worker_trains_in_a_ray_task_as_plain_xgboost_does(ray_local, tmp_path):
    train, valid = _data(6000, 11), _data(2000, 12)
    model = train_xgboost(train, valid, params=PARAMS, num_boost_round=23, storage_path=str(tmp_path),
                          name="task", num_workers=1, cpus_per_worker=2, checkpoint_every=10)
    assert model.engine == "ray_task" and model.sizing.nthread == 2
    assert model.rounds == 23 and model.metrics["rounds"] == 23 and model.metrics["resumed_from_round"] == 0
    assert model.metrics["reports"] == 3                 # checkpoints at 10 and 20, the model at 23
    assert model.checkpoint_path == str(tmp_path / "task" / CHECKPOINT)
    saved = xgboost.Booster(model_file=model.checkpoint_path)
    assert saved.num_boosted_rounds() == 23
    told = json.loads((tmp_path / "task" / PROGRESS).read_text())       # what the driver's bar reads
    assert told["total"] == 23 and 1 <= told["round"] <= 23
    plain = xgboost.train({**PARAMS, "nthread": 2}, xgboost.DMatrix(train[0], label=train[1]), num_boost_round=23,
                          evals=[(xgboost.DMatrix(valid[0], label=valid[1]), "validation")], verbose_eval=False)
    # one worker, the same threads and data: the same model, to the bit
    np.testing.assert_array_equal(model.booster.predict(xgboost.DMatrix(valid[0])), plain.predict(xgboost.DMatrix(valid[0])))
    expected = float(plain.eval(xgboost.DMatrix(valid[0], label=valid[1]), "validation").split(":")[1])
    assert abs(model.metrics["validation-auc"] - expected) < 1e-6


def test_killed_task_resumes_from_its_last_checkpoint(ray_local, tmp_path):
    train, valid = _data(4000, 13), _data(1000, 14)
    model = train_xgboost(train, valid, params=PARAMS, num_boost_round=20, storage_path=str(tmp_path),
                          name="killed-task", num_workers=1, cpus_per_worker=1, checkpoint_every=10,
                          max_failures=1, kill_worker_at={"rank": 0, "round": 13})
    assert model.engine == "ray_task" and model.rounds == 20
    assert model.metrics["resumed_from_round"] == 10      # Ray retried the task; it went on from round 10
    assert model.metrics["validation-auc"] > 0.85


def test_killed_worker_resumes_from_the_last_checkpoint(ray_local, tmp_path):
    train, valid = _data(4000, 3), _data(1000, 4)
    model = train_xgboost(train, valid, params=PARAMS, num_boost_round=20, storage_path=str(tmp_path),
                          name="killed", num_workers=2, cpus_per_worker=0.5, checkpoint_every=10,
                          max_failures=1, kill_worker_at={"rank": 1, "round": 13})
    assert model.rounds == 20
    assert model.metrics["resumed_from_round"] == 10      # restarted from the round-10 checkpoint, not from 0
    assert model.metrics["validation-auc"] > 0.85


def test_categorical_column_splits_by_category_on_two_workers(ray_local, tmp_path):
    good = np.random.default_rng(0).choice(30, 15, replace=False)
    train, valid = _categorical(8000, 5, good), _categorical(2000, 6, good)
    types = ["c", "q"]
    # stumps: one categorical split can hold the whole subset, one numeric split only a range of codes
    params = {"objective": "binary:logistic", "eval_metric": "auc", "tree_method": "hist", "max_depth": 1, "eta": 0.3}
    model = train_xgboost(train, valid, params=params, num_boost_round=5, storage_path=str(tmp_path),
                          name="cat", num_workers=2, cpus_per_worker=0.5, checkpoint_every=10, feature_types=types)
    after_training = model.booster.predict(dmatrix(valid[0], None, types))
    assert roc_auc_score(valid[1], after_training) > 0.93        # 5% flipped labels: about 0.95 at best
    numeric = xgboost.train(params, xgboost.DMatrix(*train), num_boost_round=5)   # the codes as numbers
    assert roc_auc_score(valid[1], numeric.predict(xgboost.DMatrix(valid[0]))) < 0.8

    path, _ = model.save(tmp_path / "out")
    loaded = xgboost.Booster(model_file=str(path))
    assert loaded.feature_types == types
    np.testing.assert_array_equal(loaded.predict(dmatrix(valid[0], None, types)), after_training)
    np.testing.assert_array_equal(loaded.predict(xgboost.DMatrix(valid[0])), after_training)   # types live in the model
    trees = json.loads(loaded.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]
    assert any(1 in t["split_type"] for t in trees)                           # 1 = categorical split
    root = json.loads(loaded.get_dump(dump_format="json")[0])
    assert root["split"] == "f0" and isinstance(root["split_condition"], list)   # a set of categories


def test_csr_matrix_trains_a_linear_model_on_auto_sizing(ray_local, tmp_path):
    rng = np.random.default_rng(7)
    onehot = scipy.sparse.random(3000, 40, density=0.1, format="csr", random_state=8, dtype=np.float32)
    onehot.data[:] = 1.0
    w = rng.normal(size=40)
    y = (onehot @ w + rng.normal(scale=0.3, size=3000) > 0).astype(np.float32)
    train, valid = (onehot[:2400], y[:2400]), (onehot[2400:], y[2400:])
    params = {"objective": "binary:logistic", "eval_metric": "auc", "booster": "gblinear", "eta": 0.5}
    model = train_xgboost(train, valid, params=params, num_boost_round=30, storage_path=str(tmp_path),
                          name="csr", checkpoint_every=100)
    # auto: one node, 4 logical CPUs -> one worker that asks for all 4 and runs 2 threads (the cores it has)
    assert model.sizing == Sizing(num_workers=1, cpus_per_worker=4.0, gpus_per_worker=0.0, nthread=4)
    assert model.engine == "ray_task" and model.metrics["nthread"] == 2 and model.metrics["reports"] == 1
    assert json.loads(model.booster.save_raw("json"))["learner"]["gradient_booster"]["name"] == "gblinear"
    assert roc_auc_score(valid[1], model.booster.predict(xgboost.DMatrix(valid[0]))) > 0.9


def test_workers_get_logical_gpus_and_stay_on_the_cpu(ray_local, tmp_path):
    train, valid = _data(2000, 9), _data(500, 10)
    model = train_xgboost(train, valid, params=PARAMS, num_boost_round=5, storage_path=str(tmp_path),
                          name="gpu", num_workers=2, cpus_per_worker=0.5, gpus_per_worker=1, checkpoint_every=5)
    assert model.sizing.gpus_per_worker == 1.0 and model.engine == "ray_train"
    assert model.metrics["gpus"] == 1                     # rank 0 was assigned one (logical) GPU
    assert model.rounds == 5 and model.metrics["validation-auc"] > 0.8
    one = train_xgboost(train, valid, params=PARAMS, num_boost_round=5, storage_path=str(tmp_path),
                        name="gpu-task", num_workers=1, cpus_per_worker=1, gpus_per_worker=0.5, checkpoint_every=5)
    assert one.engine == "ray_task" and one.metrics["gpus"] == 1      # half of one logical GPU
    assert one.rounds == 5 and one.metrics["validation-auc"] > 0.8
