"""The baseline profile: fixed bins from training, categories, nulls, a sample; Delta round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lakeray.errors import LakerayError
from lakeray.features.preprocess import OTHER
from lakeray.monitor.profile import PREDICTION, bin_index, build_profile, read_profile, write_profile

pytestmark = pytest.mark.fast

FRAME = pd.DataFrame({"age": [float(i) for i in range(100)] + [None] * 10,
                      "plan": ["basic"] * 60 + ["premium"] * 30 + [None] * 20,
                      "active": [True, False] * 55})


def test_numeric_bins_categories_and_nulls():
    profile = build_profile(FRAME, {"age": "numeric", "plan": "categorical", "active": "boolean"},
                            predictions=np.linspace(0, 1, 110), bins=4, sample_size=30)
    age = profile["age"]
    assert age["edges"] == [24.75, 49.5, 74.25] and age["counts"] == [25, 25, 25, 25]   # [a, b) bins
    assert sum(age["counts"]) == 100 and age["null_rate"] == pytest.approx(10 / 110)
    assert len(age["sample"]) == 30 and set(age["sample"]) <= set(range(100))
    assert age["quantiles"]["0.5"] == pytest.approx(49.5)
    plan = profile["plan"]
    assert plan["frequencies"] == {"basic": 60, "premium": 30} and plan[OTHER] == 0
    assert plan["null_rate"] == pytest.approx(20 / 110)
    assert profile["active"]["frequencies"] == {"True": 55, "False": 55}
    assert profile[PREDICTION]["count"] == 110
    # the same [a, b) convention as Spark's Bucketizer: a value on an edge goes to the bin above
    assert bin_index(np.array([24.75, 24.7, 1e9, -1e9]), age["edges"]).tolist() == [1, 0, 3, 0]


def test_delta_round_trip_by_train_run(tmp_path):
    path = str(tmp_path / "baseline_profiles")
    profile = build_profile(FRAME, {"age": "numeric", "plan": "categorical"})
    write_profile(path, profile, train_run_id="run-a", model_sha256="a" * 64, pipeline="p")
    write_profile(path, build_profile(FRAME.head(50), {"age": "numeric"}), train_run_id="run-b",
                  model_sha256="b" * 64, pipeline="p")
    assert read_profile(path, "run-a") == profile
    assert set(read_profile(path, "run-b")) == {"age"}
    with pytest.raises(LakerayError, match="has no baseline profile for train run run-c"):
        read_profile(path, "run-c")
    with pytest.raises(LakerayError, match="no baseline profile table at"):
        read_profile(str(tmp_path / "missing"), "run-a")
