"""Preprocessing is fitted on train only, applies identically after a JSON round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lakeray.errors import LakerayError
from lakeray.features import FeaturePipeline, TargetEncoder

FEATURES = {"age": "numeric", "plan": "categorical", "active": "boolean"}
TRAIN = pd.DataFrame({"age": [10.0, 20.0, None, 40.0], "plan": ["basic", "premium", "basic", None],
                      "active": [True, True, None, False]})
TEST = pd.DataFrame({"age": [None, 100.0], "plan": ["gold", "premium"], "active": [None, False]})


def test_statistics_come_from_the_training_split_only():
    pipe = FeaturePipeline.fit(TRAIN, FEATURES)
    assert pipe.medians["age"] == 20.0
    assert pipe.vocab["plan"] == ["basic", "premium"]
    assert pipe.modes["active"] == 1.0
    assert pipe.output_columns == ["age", "plan=basic", "plan=premium", "plan=__other__", "active"]
    out = pipe.transform(TEST)
    # unseen category 'gold' -> __other__; missing age -> train median; missing flag -> train mode
    np.testing.assert_array_equal(out, np.array([[20, 0, 0, 1, 1], [100, 0, 1, 0, 0]], dtype=np.float32))


def test_json_round_trip_gives_the_same_matrix():
    pipe = FeaturePipeline.fit(TRAIN, FEATURES, standardize=True)
    again = FeaturePipeline.from_json(pipe.to_json())
    np.testing.assert_array_equal(pipe.transform(TEST), again.transform(TEST))
    assert abs(pipe.transform(TRAIN)[:, 0].mean()) < 1e-6      # standardised with train statistics
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
