"""Preprocessing fitted on the training split only, stored as JSON next to the model.

The same object turns a pandas frame (or, for serving, a list of row dicts) into the model's
matrix at training, evaluation, batch scoring and serving time, so there is no
training/serving skew. Three encodings:

  native        tree models (XGBoost's own categorical support): one float32 column per feature.
                Numbers as they are and booleans 0/1, NaN where missing (XGBoost learns where
                missing rows go); a categorical holds the code of its value in the training
                vocabulary (up to `max_categories` most frequent values), NaN for missing and
                unseen values. `feature_types` ("q"/"c") tells XGBoost which columns are categories.
  onehot        linear models: a sparse CSR matrix. Numbers imputed with the training median
                (standardised if asked), booleans with the training mode, categoricals one-hot
                over the vocabulary with an `__other__` column for unseen and missing values.
  dense_onehot  the same as a dense array: the layout of bundles written before native
                categoricals (format v1), still loaded and served as they were trained.

Missing means the same in every reader's frame (None, NaN, pd.NA; object, `string[pyarrow]`,
`category`, ArrowDtype, nullable dtypes): see lakeray.features.values. Non-finite numbers
(inf, -inf) are missing too, and finite numbers are clipped to the float32 range.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math

import numpy as np
import pandas as pd

from lakeray.errors import LakerayError
from lakeray.features.target import TargetEncoder
from lakeray.features.values import FLOAT32_MAX, boolean_values, numeric_values, row_flag, row_number
from lakeray.features.vocab import Vocab, fit_vocab

__all__ = ["ENCODINGS", "FeaturePipeline", "OTHER", "TargetEncoder"]
OTHER = "__other__"
FORMAT = "lakeray.feature_pipeline/v2"
LEGACY_FORMAT = "lakeray.feature_pipeline/v1"
ENCODINGS = ("native", "onehot", "dense_onehot")
SMALL = 16      # frames up to this many rows take the row path (pandas' per-column cost dominates there)


@dataclasses.dataclass
class FeaturePipeline:
    features: dict[str, str]                       # name -> numeric | categorical | boolean
    medians: dict[str, float] = dataclasses.field(default_factory=dict)
    means: dict[str, float] = dataclasses.field(default_factory=dict)
    stds: dict[str, float] = dataclasses.field(default_factory=dict)
    vocab: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    modes: dict[str, float] = dataclasses.field(default_factory=dict)
    standardize: bool = False
    encoding: str = "native"

    def __post_init__(self):
        if self.encoding not in ENCODINGS:
            raise LakerayError(f"unknown feature encoding {self.encoding!r}; known: {', '.join(ENCODINGS)}")

    # -- fitting (training split only)
    @classmethod
    def fit(cls, train: pd.DataFrame, features: dict[str, str], *, encoding: str = "native", standardize: bool = False,
            max_categories: int | None = None) -> "FeaturePipeline":
        missing = [c for c in features if c not in train.columns]
        if missing:
            raise LakerayError(f"training data lacks feature column(s): {', '.join(missing)}")
        limit = max_categories or (1000 if encoding == "native" else 50)
        pipe = cls(dict(features), standardize=standardize, encoding=encoding)
        for name, kind in features.items():
            col = train[name]
            if kind == "numeric":
                values = numeric_values(col)
                present = values[~np.isnan(values)]
                pipe.medians[name] = float(np.median(present)) if len(present) else 0.0
                filled = np.where(np.isnan(values), pipe.medians[name], values)
                pipe.means[name] = float(filled.mean()) if len(filled) else 0.0
                std = float(filled.std()) if len(filled) else 0.0
                pipe.stds[name] = std if std > 0 and math.isfinite(std) else 1.0
            elif kind == "categorical":
                pipe.vocab[name] = fit_vocab(col, limit)
            else:
                flags = boolean_values(col)
                ones, zeros = int((flags == 1).sum()), int((flags == 0).sum())
                pipe.modes[name] = 1.0 if ones > zeros else 0.0       # a tie (or no value) is False, as before
        return pipe

    # -- the matrix layout
    @property
    def native(self) -> bool:
        return self.encoding == "native"

    @property
    def output_columns(self) -> list[str]:
        if self.native:
            return list(self.features)
        out = []
        for name, kind in self.features.items():
            if kind == "categorical":
                out += [f"{name}={v}" for v in self.vocab[name]] + [f"{name}={OTHER}"]
            else:
                out.append(name)
        return out

    @property
    def feature_types(self) -> list[str] | None:
        """XGBoost's feature types of the native layout ("c" categorical, "q" the rest); None otherwise."""
        return ["c" if kind == "categorical" else "q" for kind in self.features.values()] if self.native else None

    @functools.cached_property
    def _vocabs(self) -> dict[str, Vocab]:
        return {name: Vocab(entries) for name, entries in self.vocab.items()}

    # -- applying (any split, batch scoring, serving)
    def _columns(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """name -> float64 values (numeric, boolean; NaN missing) or int64 codes (categorical; -1 missing/unseen)."""
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise LakerayError(f"input lacks feature column(s): {', '.join(missing)}")
        out = {}
        for name, kind in self.features.items():
            col = frame[name]
            if kind == "numeric":
                out[name] = numeric_values(col)
            elif kind == "categorical":
                out[name] = self._vocabs[name].codes(col)
            else:
                out[name] = boolean_values(col)
        return out

    @functools.cached_property
    def _converters(self) -> list[tuple[str, object]]:
        """(name, one value -> its number in the row path): row_number, row_flag, and for a
        categorical its code (native: NaN where missing or unseen; one-hot: -1)."""
        out = []
        for name, kind in self.features.items():
            if kind == "categorical":
                code = self._vocabs[name].code
                out.append((name, (lambda v, code=code: float(c) if (c := code(v)) >= 0 else math.nan) if self.native else code))
            else:
                out.append((name, row_number if kind == "numeric" else row_flag))
        return out

    def _rows_matrix(self, lists: dict[str, list], rows: int):
        """The matrix of a few rows given as value lists per column, without pandas: the values
        _columns + _assemble give for their frame."""
        if self.native:
            flat = [convert(lists[name][i]) for i in range(rows) for name, convert in self._converters]
            return np.array(flat, dtype=np.float32).reshape(rows, len(self.features))
        return self._onehot({name: np.array([convert(v) for v in lists[name]], dtype=np.int64 if self.features[name] ==
                                            "categorical" else np.float64) for name, convert in self._converters}, rows)

    def _assemble(self, columns: dict[str, np.ndarray], rows: int):
        if self.native:          # column-major: each feature is written (and read by XGBoost) contiguously
            out = np.empty((rows, len(self.features)), dtype=np.float32, order="F")
            for j, (name, kind) in enumerate(self.features.items()):
                out[:, j] = columns[name]
                if kind == "categorical":
                    out[columns[name] < 0, j] = np.nan
            return out
        return self._onehot(columns, rows)

    def _onehot(self, columns: dict[str, np.ndarray], rows: int):
        """CSR with one stored entry per numeric/boolean feature and one per categorical, per row."""
        import scipy.sparse as sp

        per_row, offset = len(self.features), 0
        indices = np.empty((rows, per_row), dtype=np.int64)
        data = np.empty((rows, per_row), dtype=np.float64)
        for j, (name, kind) in enumerate(self.features.items()):
            values = columns[name]
            if kind == "categorical":
                size = len(self.vocab[name])
                indices[:, j] = offset + np.where(values < 0, size, values)
                data[:, j] = 1.0
                offset += size + 1
                continue
            if kind == "numeric":
                values = np.where(np.isnan(values), self.medians[name], values)
                if self.standardize:
                    values = (values - self.means[name]) / self.stds[name]
            else:
                values = np.where(np.isnan(values), self.modes[name], values)
            indices[:, j], data[:, j] = offset, values
            offset += 1
        data = np.clip(data, -FLOAT32_MAX, FLOAT32_MAX).astype(np.float32)
        matrix = sp.csr_matrix((data.ravel(), indices.ravel(), np.arange(0, rows * per_row + 1, per_row)),
                               shape=(rows, offset))
        return matrix.toarray() if self.encoding == "dense_onehot" else matrix

    def transform(self, frame: pd.DataFrame):
        """The model's matrix: float32 ndarray (native, dense_onehot) or float32 CSR (onehot)."""
        if len(frame) <= SMALL and all(c in frame.columns for c in self.features):
            return self._rows_matrix({c: frame[c].tolist() for c in self.features}, len(frame))
        return self._assemble(self._columns(frame), len(frame))

    def transform_rows(self, rows: list[dict]):
        """The matrix of rows given as dicts, absent keys missing (serving): the values transform()
        gives for their frame, without building one for a few rows."""
        if len(rows) > SMALL:
            return self._assemble(self._columns(pd.DataFrame(rows, columns=list(self.features))), len(rows))
        return self._rows_matrix({c: [row.get(c) for row in rows] for c in self.features}, len(rows))

    # -- storage: JSON, never pickle
    def to_json(self) -> str:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["features"] = [[name, kind] for name, kind in self.features.items()]  # the column order matters
        return json.dumps({"format": FORMAT, **data}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FeaturePipeline":
        data = json.loads(text)
        fmt = data.pop("format", None)
        if fmt not in (FORMAT, LEGACY_FORMAT):
            raise LakerayError(f"not a lakeray feature pipeline (expected format {FORMAT})")
        if fmt == LEGACY_FORMAT:          # dense one-hot, as every v1 model was trained
            data["encoding"] = "dense_onehot"
        data["features"] = {name: kind for name, kind in data["features"]}
        return cls(**data)

