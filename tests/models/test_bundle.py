"""The model bundle: UBJSON booster + fitted preprocessing + manifest with checksums."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost

from lakeray.errors import LakerayError
from lakeray.features import build_matrices
from lakeray.models import ModelBundle, booster_params, load_bundle
from lakeray.models.bundle import FEATURES_FILE, MANIFEST_FILE, MODEL_FILE
from lakeray.models.families import dmatrix
from tests.support import synthetic_snapshot

pytestmark = pytest.mark.fast


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory, churn_spec):
    snapshot = synthetic_snapshot(churn_spec, rows=600)
    mats = build_matrices(churn_spec, snapshot)
    x, y = mats.splits["train"]
    params = booster_params({"fixed": {"booster": "gbtree"}}, {"max_depth": 3}, "binary")
    booster = xgboost.train({**params, "nthread": 1}, dmatrix(x, y, mats.feature_types), num_boost_round=5)
    bundle = ModelBundle(booster, mats.features, mats.target, {"task": "binary", "family": "xgboost"})
    folder = bundle.save(tmp_path_factory.mktemp("bundle"))
    return folder, bundle, snapshot


def test_round_trip_predicts_the_same_from_raw_rows(bundle_dir):
    folder, bundle, snapshot = bundle_dir
    loaded = load_bundle(folder)
    test = snapshot.frames["test"]
    np.testing.assert_allclose(loaded.predict_frame(test), bundle.predict_frame(test), rtol=1e-6)
    assert loaded.features.to_json() == bundle.features.to_json()
    assert (folder / MODEL_FILE).read_bytes()[:1] == b"{"          # UBJSON object marker, not a pickle
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert set(manifest["sha256"]) == {"model.ubj", "features.json", "target.json"}
    importance = loaded.importance()
    assert importance and set(importance) <= set(loaded.features.output_columns)


def test_serving_rows_score_exactly_as_the_frame_at_training_and_evaluation(bundle_dir):
    # serving hands row dicts (JSON: absent keys, None, ints for floats) to predict_rows; batch
    # scoring and evaluation hand frames to predict_frame: the same scores, one row or many
    _, bundle, snapshot = bundle_dir
    test = snapshot.frames["test"].head(40)
    records = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items() if v is not None}
               for row in test.to_dict("records")]
    frame_scores = bundle.predict_frame(test)
    np.testing.assert_array_equal(bundle.predict_rows(records), frame_scores)             # > SMALL rows: pandas
    np.testing.assert_array_equal(np.concatenate([bundle.predict_rows([r]) for r in records]), frame_scores)
    np.testing.assert_array_equal(np.concatenate([bundle.predict_frame(test.iloc[[i]]) for i in range(len(test))]),
                                  frame_scores)
    assert bundle.features.native and "c" in bundle.features.feature_types


def test_max_f1_threshold_is_the_validation_cut_with_the_best_f1():
    from sklearn.metrics import f1_score

    from lakeray.evaluate.metrics import decision_threshold

    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.2).astype(int)
    p = np.clip(0.15 + 0.3 * y + rng.normal(scale=0.15, size=500), 0, 1)
    cut = decision_threshold("max_f1", y, p)
    best = f1_score(y, p >= cut)
    assert all(best >= f1_score(y, p >= c) - 1e-12 for c in np.linspace(0.05, 0.95, 91))
    assert cut < 0.5 and decision_threshold(0.3, y, p) == 0.3


def test_a_tampered_file_or_a_different_registered_checksum_is_refused(bundle_dir, tmp_path):
    folder, _, _ = bundle_dir
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    with pytest.raises(LakerayError, match="is not the registered"):
        load_bundle(copy, expected_model_sha256="0" * 64)
    (copy / FEATURES_FILE).write_text((copy / FEATURES_FILE).read_text().replace('"standardize": false', '"standardize": true'))
    with pytest.raises(LakerayError, match=f"{FEATURES_FILE}: SHA-256 .* does not match the manifest"):
        load_bundle(copy)
    (copy / MANIFEST_FILE).unlink()
    with pytest.raises(LakerayError, match="manifest.json is missing"):
        load_bundle(copy)


@pytest.mark.parametrize(("booster", "objective", "classes"), [
    ("gbtree", "binary:logistic", 0), ("gblinear", "binary:logistic", 0), ("gbtree", "multi:softprob", 3),
    ("gblinear", "multi:softprob", 3), ("gbtree", "reg:squarederror", 0)])
def test_no_rows_score_to_no_scores_without_xgboosts_empty_dataset_warning(booster, objective, classes, recwarn):
    """Evaluate scores Dask's empty partitions (and the empty frame Dask plans with): XGBoost warned
    'Empty dataset at worker' on every run whose test split left a file without rows."""
    from lakeray.models.families import predict

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    y = rng.integers(0, classes or 2, size=60)
    params = {"booster": booster, "objective": objective, **({"num_class": classes} if classes else {})}
    model = xgboost.train(params, xgboost.DMatrix(x, label=y), num_boost_round=2)
    task = "multiclass" if classes else "regression" if objective.startswith("reg") else "binary"
    assert predict(model, x, task).shape == ((60, classes) if classes else (60,))
    none = predict(model, x[:0], task)
    assert none.shape == (0,) and none.dtype == np.float32
    assert not [w for w in recwarn if "Empty dataset" in str(w.message)]
