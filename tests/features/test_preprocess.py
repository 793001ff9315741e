"""Preprocessing is fitted on train only, applies identically after a JSON round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from lakeray.errors import LakerayError
from lakeray.features import FeaturePipeline, TargetEncoder

pytestmark = pytest.mark.fast

FEATURES = {"age": "numeric", "plan": "categorical", "active": "boolean"}
TRAIN = pd.DataFrame({"age": [10.0, 20.0, None, 40.0], "plan": ["basic", "premium", "basic", None],
                      "active": [True, True, None, False]})
TEST = pd.DataFrame({"age": [None, 100.0], "plan": ["gold", "premium"], "active": [None, False]})


def _dense(matrix):
    return matrix.toarray() if sp.issparse(matrix) else matrix


def test_statistics_come_from_the_training_split_only():
    pipe = FeaturePipeline.fit(TRAIN, FEATURES, encoding="onehot")
    assert pipe.medians["age"] == 20.0
    assert pipe.vocab["plan"] == ["basic", "premium"]
    assert pipe.modes["active"] == 1.0
    assert pipe.output_columns == ["age", "plan=basic", "plan=premium", "plan=__other__", "active"]
    out = pipe.transform(TEST)
    assert sp.issparse(out) and out.dtype == np.float32            # linear models get sparse one-hot
    # unseen category 'gold' -> __other__; missing age -> train median; missing flag -> train mode
    np.testing.assert_array_equal(out.toarray(), np.array([[20, 0, 0, 1, 1], [100, 0, 1, 0, 0]], dtype=np.float32))


def test_native_layout_keeps_one_column_per_feature_with_codes_and_missing():
    pipe = FeaturePipeline.fit(TRAIN, FEATURES)
    assert pipe.output_columns == ["age", "plan", "active"] and pipe.feature_types == ["q", "c", "q"]
    # 'gold' was never seen in training: missing, like a null (XGBoost routes it as it learned)
    np.testing.assert_array_equal(pipe.transform(TEST), np.array([[np.nan, np.nan, np.nan], [100, 1, 0]], dtype=np.float32))
    assert FeaturePipeline.fit(TRAIN, FEATURES, encoding="onehot").feature_types is None


def test_native_vocabulary_keeps_the_most_frequent_categories_up_to_the_limit():
    train = pd.DataFrame({"airport": [f"a{i:03d}" for i in range(300) for _ in range(300 - i)]})
    pipe = FeaturePipeline.fit(train, {"airport": "categorical"})
    assert len(pipe.vocab["airport"]) == 300                          # no __other__ fold at 50 any more
    small = FeaturePipeline.fit(train, {"airport": "categorical"}, max_categories=10)
    assert small.vocab["airport"] == [f"a{i:03d}" for i in range(10)]
    assert np.isnan(small.transform(pd.DataFrame({"airport": ["a200"]}))[0, 0])


def test_a_v1_bundle_pipeline_loads_as_dense_one_hot():
    import json

    data = json.loads(FeaturePipeline.fit(TRAIN, FEATURES, encoding="onehot").to_json())
    data.pop("encoding")
    data["format"] = "lakeray.feature_pipeline/v1"
    old = FeaturePipeline.from_json(json.dumps(data))
    assert old.encoding == "dense_onehot" and isinstance(old.transform(TEST), np.ndarray)
    np.testing.assert_array_equal(old.transform(TEST), [[20, 0, 0, 1, 1], [100, 0, 1, 0, 0]])
    with pytest.raises(LakerayError, match="unknown feature encoding 'embedding'"):
        FeaturePipeline(FEATURES, encoding="embedding")


def test_json_round_trip_gives_the_same_matrix():
    for encoding in ("native", "onehot"):
        pipe = FeaturePipeline.fit(TRAIN, FEATURES, encoding=encoding, standardize=True)
        again = FeaturePipeline.from_json(pipe.to_json())
        assert again.encoding == encoding
        np.testing.assert_array_equal(_dense(pipe.transform(TEST)), _dense(again.transform(TEST)))
    assert abs(_dense(pipe.transform(TRAIN))[:, 0].mean()) < 1e-6      # standardised with train statistics
    with pytest.raises(LakerayError, match="not a lakeray feature pipeline"):
        FeaturePipeline.from_json('{"format": "pickle"}')


def test_missing_feature_columns_are_named():
    with pytest.raises(LakerayError, match="training data lacks feature column\\(s\\): plan"):
        FeaturePipeline.fit(TRAIN.drop(columns=["plan"]), FEATURES)
    pipe = FeaturePipeline.fit(TRAIN, FEATURES)
    with pytest.raises(LakerayError, match="input lacks feature column\\(s\\): active"):
        pipe.transform(TEST.drop(columns=["active"]))


def test_target_encoding(churn_spec, telco_spec):
    enc = TargetEncoder.fit(pd.Series([True, False]), churn_spec)
    np.testing.assert_array_equal(enc.transform(pd.Series([True, False, True])), [1, 0, 1])
    enc = TargetEncoder.from_json(TargetEncoder.fit(pd.Series(["yes"]), telco_spec).to_json())
    np.testing.assert_array_equal(enc.transform(pd.Series(["yes", "no", "Yes"])), [1, 0, 1])
    with pytest.raises(LakerayError, match="target has 1 null value"):
        enc.transform(pd.Series(["yes", None]))


def test_a_binary_target_keeps_the_name_of_its_other_class(churn_spec, telco_spec):
    assert TargetEncoder.fit(pd.Series([True, False]), churn_spec).negative is False
    named = TargetEncoder.fit(pd.Series(["yes", "No", "no", "no", None]), telco_spec)
    assert (named.positive, named.negative) == ("yes", "no")
    assert TargetEncoder.from_json(named.to_json()).negative == "no"
    # several other values are all negatives: no one name for them
    assert TargetEncoder.fit(pd.Series(["yes", "no", "maybe"]), telco_spec).negative is None
    # a bundle written before the field: read as before
    assert TargetEncoder.from_json('{"task": "binary", "classes": [], "positive": "yes"}').negative is None
