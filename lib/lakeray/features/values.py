"""Raw column values -> numbers, category keys and flags, the same in every pandas dtype backend.

Readers disagree on what a missing value looks like: delta-rs gives `None` in object columns,
pandas `NaN`, Dask's `string[pyarrow]` and the nullable dtypes `pd.NA`, ArrowDtype columns `pd.NA`
too. `pd.isna` is the one test that knows them all, so every function here decides "missing" with
it, and the same values give the same result whether a column is object, `string`,
`string[pyarrow]`, `category`, ArrowDtype or nullable Int64/Float64/boolean.

  numeric_values    float64; NaN for missing, unparseable and non-finite values (inf is missing,
                    never handed to XGBoost); finite values are clipped to the float32 range
  category_keys     object array of canonical strings (None where missing): 1, 1.0 and
                    Int64 1 are all "1", True is "True", strings are themselves
  boolean_values    float64 1/0; NaN for missing and for text that is not a boolean
  row_number, row_flag   the same for one value (the serving path: no pandas for a few rows)
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

FLOAT32_MAX = float(np.finfo(np.float32).max)
TRUE_TEXT = frozenset({"true", "t", "yes", "y", "1"})
FALSE_TEXT = frozenset({"false", "f", "no", "n", "0"})
_INT_SAFE = 2.0 ** 53     # floats below this print as the integer they are


def _series(values) -> pd.Series:
    if isinstance(values, pd.Series):
        return values
    return pd.Series(values, dtype=object if len(values) == 0 else None)


def missing_mask(values) -> np.ndarray:
    return np.asarray(pd.isna(_series(values)), dtype=bool)


def _number(value) -> float:
    """One value as a float (NaN when it is not a number); for columns pandas cannot convert whole."""
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return float("nan")


def numeric_values(values) -> np.ndarray:
    """float64 with NaN for missing, unparseable and non-finite values; the rest within float32's range."""
    col = _series(values)
    if isinstance(col.dtype, np.dtype) and col.dtype.kind in "fiub":      # plain numpy numbers: no parsing
        out = col.to_numpy(dtype="float64", copy=True)
    else:
        try:
            out = pd.to_numeric(col, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        except (TypeError, ValueError, OverflowError):
            out = np.array([np.nan if m else _number(v) for v, m in zip(col.tolist(), missing_mask(col), strict=True)], dtype="float64")
        out = np.array(out, dtype="float64", copy=True)
    out[np.isinf(out)] = np.nan
    return np.clip(out, -FLOAT32_MAX, FLOAT32_MAX, out=out)


def _float_keys(numbers_: np.ndarray) -> np.ndarray:
    """Canonical text of finite-or-not floats: integral values without '.0'."""
    keys = np.empty(len(numbers_), dtype=object)
    integral = np.isfinite(numbers_) & (np.abs(numbers_) < _INT_SAFE)
    integral[integral] = numbers_[integral] == np.trunc(numbers_[integral])
    keys[integral] = [str(int(v)) for v in numbers_[integral].tolist()]
    keys[~integral] = [str(v) for v in numbers_[~integral].tolist()]
    return keys


def _is_text_dtype(dtype) -> bool:
    if isinstance(dtype, pd.StringDtype):
        return True
    if isinstance(dtype, pd.ArrowDtype):
        import pyarrow as pa

        return pa.types.is_string(dtype.pyarrow_dtype) or pa.types.is_large_string(dtype.pyarrow_dtype)
    return False


def category_key(value) -> str | None:
    """The canonical category text of one value (None when missing)."""
    if not isinstance(value, (list, tuple, dict, set, np.ndarray)) and pd.isna(value):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return _float_keys(np.array([float(value)]))[0]
    return str(value)


def category_keys(values) -> np.ndarray:
    """Object array of canonical category texts, None where the value is missing."""
    col = _series(values)
    if isinstance(col.dtype, pd.CategoricalDtype):    # the categories (few) once, then their codes
        categories = category_keys(pd.Series(col.cat.categories))
        codes = col.cat.codes.to_numpy()
        return np.append(categories, None).astype(object)[np.where(codes < 0, len(categories), codes)]
    if _is_text_dtype(col.dtype):                       # string, string[pyarrow], ArrowDtype(string): already text
        return col.to_numpy(dtype=object, na_value=None)
    missing = missing_mask(col)
    keys = np.full(len(col), None, dtype=object)
    if missing.all():
        return keys
    present = col[~missing]
    kind = pd.api.types.infer_dtype(present, skipna=False)
    if kind == "string":
        keys[~missing] = present.to_numpy(dtype=object)
    elif kind == "boolean":
        keys[~missing] = np.where(present.to_numpy(dtype=bool), "True", "False")
    elif kind == "integer":
        keys[~missing] = [str(int(v)) for v in present.tolist()]
    elif kind == "floating":
        keys[~missing] = _float_keys(present.to_numpy(dtype="float64"))
    else:                                           # mixed types (ints among floats too): one value at a time
        keys[~missing] = [category_key(v) for v in present.tolist()]
    return keys


def _flag(value) -> float:
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_TEXT or text in FALSE_TEXT:
            return float(text in TRUE_TEXT)
    number = _number(value)
    return float(number != 0) if np.isfinite(number) else np.nan


def boolean_values(values) -> np.ndarray:
    """float64 1/0: booleans; numbers (non-zero is 1); text true/false, yes/no, t/f, y/n or a number,
    in any case. NaN for missing values and for anything else."""
    col = _series(values)
    if isinstance(col.dtype, pd.CategoricalDtype):    # the categories once, then their codes
        flags = np.append(boolean_values(pd.Series(col.cat.categories)), np.nan)
        codes = col.cat.codes.to_numpy()
        return flags[np.where(codes < 0, len(flags) - 1, codes)]
    if pd.api.types.is_bool_dtype(col.dtype):
        return col.to_numpy(dtype="float64", na_value=np.nan)
    if pd.api.types.is_numeric_dtype(col.dtype):
        numbers_ = numeric_values(col)
        return np.where(np.isnan(numbers_), np.nan, (numbers_ != 0).astype("float64"))
    missing = missing_mask(col)
    out = np.full(len(col), np.nan)
    if missing.all():
        return out
    present = col[~missing]
    if pd.api.types.infer_dtype(present, skipna=False) == "string":    # each distinct text parsed once
        codes, uniques = pd.factorize(present.astype(object).to_numpy())
        out[~missing] = np.array([_flag(u) for u in uniques.tolist()], dtype="float64")[codes]
    else:
        out[~missing] = [_flag(v) for v in present.tolist()]
    return out


def _scalar_missing(value) -> bool:
    return not isinstance(value, (list, tuple, dict, set, np.ndarray)) and bool(pd.isna(value))


def row_number(value) -> float:
    """numeric_values of one value."""
    if isinstance(value, (float, np.floating)) or (isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
                                                   and abs(int(value)) < 2 ** 63):
        number = float(value)
        if not math.isfinite(number):
            return float("nan")
        return min(max(number, -FLOAT32_MAX), FLOAT32_MAX)
    if value is None or _scalar_missing(value):
        return float("nan")
    return float(numeric_values(pd.Series([value], dtype=object))[0])


def row_flag(value) -> float:
    """boolean_values of one value."""
    if value is None or _scalar_missing(value):
        return float("nan")
    return _flag(value)
