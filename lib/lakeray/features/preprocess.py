"""Preprocessing fitted on the training split only, stored as JSON next to the model.

The same object turns a pandas frame into the model's matrix at training, evaluation, batch
scoring and serving time, so there is no training/serving skew. Numeric features are imputed
with the training median (and optionally standardised, for linear models); categorical
features are one-hot encoded over the training vocabulary, with an `__other__` column for
values never seen in training; boolean features become 0/1 with the training mode for nulls.

Missing means the same in every reader's frame (None, NaN, pd.NA; object, `string[pyarrow]`,
`category`, ArrowDtype, nullable dtypes): see lakeray.features.values. Non-finite numbers
(inf, -inf) are missing too, and the matrix is always finite float32.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any

import numpy as np
import pandas as pd

from lakeray.errors import LakerayError
from lakeray.features.values import (FLOAT32_MAX, boolean_values, category_key, category_keys, missing_mask,
                                     numeric_values)
from lakeray.spec.models import PipelineSpec

OTHER = "__other__"
FORMAT = "lakeray.feature_pipeline/v1"
_LEGACY_FLOAT = re.compile(r"^-?[0-9]+\.0$")


def _lookup(entries: list[str]) -> dict[str, str]:
    """Canonical key -> stored entry, for entries stored before keys were canonical
    (a float category 1.0 was stored as "1.0"; its key is now "1")."""
    out = {e: e for e in entries}
    for entry in entries:
        if _LEGACY_FLOAT.match(entry):
            out.setdefault(category_key(float(entry)), entry)
    return out


def _as_entries(keys: np.ndarray, entries: list[str]) -> np.ndarray:
    lookup = _lookup(entries)
    if len(lookup) == len(entries):
        return keys
    return np.array([lookup.get(k, k) if k is not None else None for k in keys.tolist()], dtype=object)


def encode_categories(keys: np.ndarray, vocab: list[str]) -> np.ndarray:
    """Index of each key in `vocab`; len(vocab) (the __other__ column) for unseen and missing keys."""
    codes = pd.Categorical(_as_entries(keys, vocab), categories=vocab).codes.astype(np.int64)
    codes[codes < 0] = len(vocab)
    return codes


@dataclasses.dataclass
class FeaturePipeline:
    features: dict[str, str]                       # name -> numeric | categorical | boolean
    medians: dict[str, float] = dataclasses.field(default_factory=dict)
    means: dict[str, float] = dataclasses.field(default_factory=dict)
    stds: dict[str, float] = dataclasses.field(default_factory=dict)
    vocab: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    modes: dict[str, float] = dataclasses.field(default_factory=dict)
    standardize: bool = False

    # -- fitting (training split only)
    @classmethod
    def fit(cls, train: pd.DataFrame, features: dict[str, str], standardize: bool = False,
            max_categories: int = 50) -> "FeaturePipeline":
        missing = [c for c in features if c not in train.columns]
        if missing:
            raise LakerayError(f"training data lacks feature column(s): {', '.join(missing)}")
        pipe = cls(dict(features), standardize=standardize)
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
                keys = category_keys(col)
                counts = pd.Series(keys[~missing_mask(keys)], dtype=object).value_counts()
                top = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable").index[:max_categories]
                pipe.vocab[name] = sorted(top)
            else:
                flags = boolean_values(col)
                ones, zeros = int((flags == 1).sum()), int((flags == 0).sum())
                pipe.modes[name] = 1.0 if ones > zeros else 0.0       # a tie (or no value) is False, as before
        return pipe

    # -- applying (any split, batch scoring, serving)
    @property
    def output_columns(self) -> list[str]:
        out = []
        for name, kind in self.features.items():
            if kind == "categorical":
                out += [f"{name}={v}" for v in self.vocab[name]] + [f"{name}={OTHER}"]
            else:
                out.append(name)
        return out

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise LakerayError(f"input lacks feature column(s): {', '.join(missing)}")
        rows = len(frame)
        blocks = []
        for name, kind in self.features.items():
            col = frame[name]
            if kind == "numeric":
                values = numeric_values(col)
                values = np.where(np.isnan(values), self.medians[name], values)
                if self.standardize:
                    values = (values - self.means[name]) / self.stds[name]
                blocks.append(values[:, None])
            elif kind == "categorical":
                vocab = self.vocab[name]
                onehot = np.zeros((rows, len(vocab) + 1), dtype=np.float32)
                onehot[np.arange(rows), encode_categories(category_keys(col), vocab)] = 1.0
                blocks.append(onehot)
            else:
                flags = boolean_values(col)
                blocks.append(np.where(np.isnan(flags), self.modes[name], flags)[:, None])
        if not blocks:
            return np.zeros((rows, 0), dtype=np.float32)
        return np.clip(np.hstack(blocks), -FLOAT32_MAX, FLOAT32_MAX).astype(np.float32)

    # -- storage: JSON, never pickle
    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["features"] = [[name, kind] for name, kind in self.features.items()]  # the column order matters
        return json.dumps({"format": FORMAT, **data}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FeaturePipeline":
        data = json.loads(text)
        if data.pop("format", None) != FORMAT:
            raise LakerayError(f"not a lakeray feature pipeline (expected format {FORMAT})")
        data["features"] = {name: kind for name, kind in data["features"]}
        return cls(**data)


def _examples(values: pd.Series, limit: int = 3) -> str:
    return ", ".join(repr(v) for v in values.head(limit).tolist())


@dataclasses.dataclass
class TargetEncoder:
    """The target as the model sees it: 0/1 for binary, class index for multiclass, float otherwise."""

    task: str
    classes: list[Any] = dataclasses.field(default_factory=list)
    positive: Any = None

    @classmethod
    def fit(cls, train_target: pd.Series, spec: PipelineSpec) -> "TargetEncoder":
        if spec.task == "binary":
            positive = spec.positive_label if spec.positive_label is not None else True
            return cls("binary", positive=positive)
        if spec.task == "multiclass":
            keys = category_keys(train_target)
            return cls("multiclass", classes=sorted(set(keys[~missing_mask(keys)].tolist())))
        return cls("regression")

    def transform(self, target: pd.Series) -> np.ndarray:
        target = target if isinstance(target, pd.Series) else pd.Series(target)
        nulls = int(missing_mask(target).sum())
        if nulls:
            raise LakerayError(f"target has {nulls} null value(s); gold should have none")
        if self.task == "binary":
            if isinstance(self.positive, bool):
                flags = boolean_values(target)
                if np.isnan(flags).any():
                    raise LakerayError(f"target has {int(np.isnan(flags).sum())} value(s) that are not booleans "
                                       f"(e.g. {_examples(target[np.isnan(flags)])}); name the positive class "
                                       "with positive_label in the spec")
                return (flags == float(self.positive)).astype(np.float32)
            wanted = str(category_key(self.positive)).lower()
            keys = pd.Series(category_keys(target), dtype=object)
            return keys.str.lower().eq(wanted).to_numpy(dtype=np.float32)
        if self.task == "multiclass":
            keys = _as_entries(category_keys(target), self.classes)
            codes = pd.Categorical(keys, categories=self.classes).codes
            if (codes < 0).any():
                raise LakerayError(f"target classes not seen in training: {sorted(set(keys[codes < 0].tolist()))[:20]}")
            return codes.astype(np.float32)
        values = pd.to_numeric(target, errors="coerce").to_numpy(dtype="float64", na_value=np.nan) \
            if len(target) else np.zeros(0)
        bad = ~np.isfinite(values) | (np.abs(values) > FLOAT32_MAX)
        if bad.any():
            raise LakerayError(f"target has {int(bad.sum())} value(s) that are not finite numbers "
                               f"(e.g. {_examples(target[bad])})")
        return values.astype(np.float32)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> "TargetEncoder":
        return cls(**json.loads(text))
