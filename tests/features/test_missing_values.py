"""Missing values mean the same in every reader's frame: None (delta-rs), NaN (pandas), pd.NA
(Dask's string[pyarrow], nullable and Arrow dtypes); non-finite numbers are missing; booleans
may come as text. One frame per dtype backend gives one matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from lakeray.errors import LakerayError
from lakeray.features import FeaturePipeline, TargetEncoder, preprocess
from lakeray.features.values import boolean_values, category_keys, numeric_values

pytestmark = pytest.mark.fast

FEATURES = {"age": "numeric", "plan": "categorical", "seats": "categorical", "active": "boolean"}
AGE = [10.0, None, float("inf"), 40.0, float("-inf"), 20.0]
PLAN = ["basic", None, "premium", "basic", None, "gold"]
SEATS = [1, None, 2, 1, 3, None]              # an integer category with nulls (float64 in pandas)
ACTIVE = [True, None, False, True, None, False]


def _backends() -> dict[str, pd.DataFrame]:
    nan = np.nan
    return {
        "object/None (delta-rs)": pd.DataFrame({"age": pd.Series(AGE, dtype=object), "plan": pd.Series(PLAN, dtype=object),
                                                "seats": pd.Series(SEATS, dtype=object), "active": pd.Series(ACTIVE, dtype=object)}),
        "numpy/NaN (pandas)": pd.DataFrame({"age": [v if v is not None else nan for v in AGE],
                                            "plan": [v if v is not None else nan for v in PLAN],
                                            "seats": [v if v is not None else nan for v in SEATS],
                                            "active": [v if v is not None else nan for v in ACTIVE]}),
        "object/pd.NA": pd.DataFrame({c: pd.Series([pd.NA if v is None else v for v in vals], dtype=object)
                                      for c, vals in (("age", AGE), ("plan", PLAN), ("seats", SEATS), ("active", ACTIVE))}),
        "nullable (string, Float64, Int64, boolean)": pd.DataFrame({
            "age": pd.Series(AGE, dtype="Float64"), "plan": pd.Series(PLAN, dtype="string"),
            "seats": pd.Series(SEATS, dtype="Int64"), "active": pd.Series(ACTIVE, dtype="boolean")}),
        "string[pyarrow] (Dask)": pd.DataFrame({
            "age": pd.Series(AGE, dtype="float64"), "plan": pd.Series(PLAN, dtype="string[pyarrow]"),
            "seats": pd.Series(SEATS, dtype="float64"), "active": pd.Series(ACTIVE, dtype="boolean")}),
        "ArrowDtype": pd.DataFrame({
            "age": pd.Series(AGE, dtype=pd.ArrowDtype(pa.float64())), "plan": pd.Series(PLAN, dtype=pd.ArrowDtype(pa.string())),
            "seats": pd.Series(SEATS, dtype=pd.ArrowDtype(pa.int64())), "active": pd.Series(ACTIVE, dtype=pd.ArrowDtype(pa.bool_()))}),
        "category": pd.DataFrame({"age": pd.Series(AGE, dtype="float64"), "plan": pd.Series(PLAN, dtype="category"),
                                  "seats": pd.Series(SEATS, dtype="category"), "active": pd.Series(ACTIVE, dtype="category")}),
        "booleans as text": pd.DataFrame({
            "age": pd.Series(AGE, dtype=object), "plan": pd.Series(PLAN, dtype=object), "seats": pd.Series(SEATS, dtype=object),
            "active": pd.Series(["true", None, "False", " YES ", pd.NA, "n"], dtype="string[pyarrow]")}),
    }


ONEHOT = np.array([
    # age (median of 10, 40, 20), plan=basic, plan=gold, plan=premium, plan=__other__, seats=1, 2, 3, __other__, active
    [10, 1, 0, 0, 0, 1, 0, 0, 0, 1],
    [20, 0, 0, 0, 1, 0, 0, 0, 1, 0],       # every value missing: median, __other__, mode (a tie -> False)
    [20, 0, 0, 1, 0, 0, 1, 0, 0, 0],       # inf is missing -> median
    [40, 1, 0, 0, 0, 1, 0, 0, 0, 1],
    [20, 0, 0, 0, 1, 0, 0, 1, 0, 0],       # -inf is missing -> median
    [20, 0, 1, 0, 0, 0, 0, 0, 1, 0]], dtype=np.float32)
nan = np.nan
NATIVE = np.array([
    # age (NaN: missing, for the trees to route), plan code in [basic, gold, premium], seats code in [1, 2, 3], active
    [10, 0, 0, 1],
    [nan, nan, nan, nan],
    [nan, 2, 1, 0],
    [40, 0, 0, 1],
    [nan, nan, 2, nan],
    [20, 1, nan, 0]], dtype=np.float32)


def dense(matrix):
    return matrix.toarray() if hasattr(matrix, "toarray") else matrix


@pytest.fixture(params=["columns", "rows"])
def path(request, monkeypatch):
    """Frames up to preprocess.SMALL rows take the row path (no pandas); both paths must agree."""
    monkeypatch.setattr(preprocess, "SMALL", 0 if request.param == "columns" else 10_000)
    return request.param


@pytest.mark.parametrize("encoding, expected", [("onehot", ONEHOT), ("native", NATIVE)])
def test_every_dtype_backend_gives_the_same_pipeline_and_matrix(encoding, expected, path):
    reference = None
    for name, frame in _backends().items():
        pipe = FeaturePipeline.fit(frame, FEATURES, encoding=encoding)
        out = dense(pipe.transform(frame))
        assert out.dtype == np.float32, name
        np.testing.assert_array_equal(out, expected, err_msg=name)
        reference = reference or pipe.to_json()
        assert pipe.to_json() == reference, name
        np.testing.assert_array_equal(dense(pipe.transform_rows(frame.to_dict("records"))), expected, err_msg=name)
    pipe = FeaturePipeline.from_json(reference)
    assert pipe.output_columns == (["age", "plan", "seats", "active"] if encoding == "native" else
                                   ["age", "plan=basic", "plan=gold", "plan=premium", "plan=__other__",
                                    "seats=1", "seats=2", "seats=3", "seats=__other__", "active"])
    for name, frame in _backends().items():       # fitted on one backend, applied to every other
        np.testing.assert_array_equal(dense(pipe.transform(frame)), expected, err_msg=name)


def test_pd_na_in_a_string_pyarrow_categorical_does_not_crash():
    # the evaluate crash: Dask reads gold strings as string[pyarrow], whose missing value is pd.NA
    frame = pd.DataFrame({"plan": pd.Series(["b", pd.NA, "z"], dtype="string[pyarrow]")})
    pipe = FeaturePipeline.fit(pd.DataFrame({"plan": ["a", "b", None]}), {"plan": "categorical"}, encoding="onehot")
    np.testing.assert_array_equal(dense(pipe.transform(frame)), [[0, 1, 0], [0, 0, 1], [0, 0, 1]])
    pipe = FeaturePipeline.fit(pd.DataFrame({"plan": ["a", "b", None]}), {"plan": "categorical"})
    np.testing.assert_array_equal(pipe.transform(frame), [[1], [np.nan], [np.nan]])     # unseen 'z' is missing


def test_non_finite_numbers_are_missing_and_never_reach_the_model(path):
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, np.inf, -np.inf, np.nan]})
    pipe = FeaturePipeline.fit(train, {"x": "numeric"}, encoding="onehot", standardize=True)
    assert pipe.medians["x"] == 2.0 and np.isfinite([pipe.means["x"], pipe.stds["x"]]).all()
    hostile = pd.DataFrame({"x": pd.Series([np.inf, -np.inf, "inf", 1e300, -1e300], dtype=object)})
    out = dense(FeaturePipeline.fit(train, {"x": "numeric"}, encoding="onehot").transform(hostile))
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[:3, 0], [2.0, 2.0, 2.0])          # one-hot (linear): the train median
    assert out[3, 0] == np.finfo(np.float32).max and out[4, 0] == -np.finfo(np.float32).max   # huge, not inf
    assert np.isfinite(dense(pipe.transform(pd.DataFrame({"x": [1e300, np.inf]})))).all()
    native = FeaturePipeline.fit(train, {"x": "numeric"}).transform(hostile)
    assert np.isnan(native[:3, 0]).all() and not np.isinf(native).any()  # native (trees): missing, never inf


def test_booleans_given_as_text_numbers_or_missing():
    flags = boolean_values(pd.Series(["True", "false", "yes", "NO", " t ", "F", "1", "0", "maybe", None, pd.NA, 2, 0.0,
                                      np.inf, True], dtype=object))
    np.testing.assert_array_equal(flags, [1, 0, 1, 0, 1, 0, 1, 0, np.nan, np.nan, np.nan, 1, 0, np.nan, 1])
    pipe = FeaturePipeline.fit(pd.DataFrame({"b": ["no", "no", "yes", None]}), {"b": "boolean"}, encoding="onehot")
    assert pipe.modes["b"] == 0.0      # the old astype(bool) took every non-empty text for True
    np.testing.assert_array_equal(dense(pipe.transform(pd.DataFrame({"b": ["Yes", "n", pd.NA]})))[:, 0], [1, 0, 0])


def test_category_keys_are_canonical_across_types():
    assert category_keys(pd.Series([1, 1.0, True, "1", 2.5, None, np.nan], dtype=object)).tolist() == \
        ["1", "1", "True", "1", "2.5", None, None]
    assert category_keys(pd.Series([1.0, np.nan])).tolist() == category_keys(pd.Series([1, None], dtype="Int64")).tolist()
    assert numeric_values(pd.Series(["1.5", "x", None, True], dtype=object)).tolist()[:1] == [1.5]


def test_a_pipeline_stored_with_float_category_texts_still_matches():
    # bundles fitted before keys were canonical stored a float category 1.0 as "1.0"
    old = FeaturePipeline({"seats": "categorical"}, vocab={"seats": ["1.0", "2.0"]}, encoding="dense_onehot")
    np.testing.assert_array_equal(old.transform(pd.DataFrame({"seats": pd.Series([1, None, 2, 3], dtype="Int64")})),
                                  [[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 1]])


def test_target_encoder_reads_every_backend_and_names_bad_values(churn_spec, telco_spec):
    binary = TargetEncoder.fit(pd.Series([True]), churn_spec)
    for target in (pd.Series([True, False], dtype="boolean"), pd.Series(["true", "False"], dtype="string[pyarrow]"),
                   pd.Series([1, 0]), pd.Series([True, False], dtype=pd.ArrowDtype(pa.bool_()))):
        np.testing.assert_array_equal(binary.transform(target), [1, 0])
    with pytest.raises(LakerayError, match="1 value\\(s\\) that are not booleans \\(e.g. 'maybe'\\)"):
        binary.transform(pd.Series(["true", "maybe"]))
    with pytest.raises(LakerayError, match="target has 1 null value"):
        binary.transform(pd.Series([True, pd.NA], dtype="boolean"))
    labelled = TargetEncoder.fit(pd.Series(["yes"]), telco_spec)
    np.testing.assert_array_equal(labelled.transform(pd.Series(["Yes", "no"], dtype="string[pyarrow]")), [1, 0])
    multi = TargetEncoder("multiclass", classes=sorted(["1", "2", "3"]))
    np.testing.assert_array_equal(multi.transform(pd.Series([3.0, 1.0])), [2, 0])
    np.testing.assert_array_equal(multi.transform(pd.Series([3, 1], dtype="Int64")), [2, 0])
    regression = TargetEncoder("regression")
    with pytest.raises(LakerayError, match="1 value\\(s\\) that are not finite numbers"):
        regression.transform(pd.Series([1.0, np.inf]))
