"""The model's target: 0/1 for binary, class index for multiclass, float for regression."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pandas as pd

from lakeray.errors import LakerayError
from lakeray.features.values import FLOAT32_MAX, boolean_values, category_key, category_keys, missing_mask
from lakeray.features.vocab import as_entries
from lakeray.spec.models import PipelineSpec


def _examples(values: pd.Series, limit: int = 3) -> str:
    return ", ".join(repr(v) for v in values.head(limit).tolist())


def _negative(train_target, positive) -> Any:
    """The name of a binary target's other class: False for a boolean one; for a named positive class,
    the one other value training saw (in its most frequent spelling), or None where it saw several
    ("no" and "maybe" are both negatives) or none."""
    if isinstance(positive, bool):
        return not positive
    keys = [k for k in category_keys(pd.Series(train_target)) if k is not None]
    wanted = str(category_key(positive)).lower()
    others = pd.Series([k for k in keys if str(k).lower() != wanted], dtype=object)
    if others.empty or others.str.lower().nunique() != 1:
        return None
    return others.value_counts().index[0]


@dataclasses.dataclass
class TargetEncoder:
    """The target as the model sees it: 0/1 for binary, class index for multiclass, float otherwise."""

    task: str
    classes: list[Any] = dataclasses.field(default_factory=list)
    positive: Any = None
    negative: Any = None        # binary: the other class's name, where training saw one (e.g. "no")

    @classmethod
    def fit(cls, train_target: pd.Series, spec: PipelineSpec) -> "TargetEncoder":
        if spec.task == "binary":
            positive = spec.positive_label if spec.positive_label is not None else True
            return cls("binary", positive=positive, negative=_negative(train_target, positive))
        if spec.task == "multiclass":
            keys = category_keys(train_target)
            return cls("multiclass", classes=sorted(set(keys[~missing_mask(keys)].tolist())))
        return cls("regression")

    def read(self, target) -> np.ndarray:
        """The target as the model sees it, as float64, NaN where a value cannot be read: not a boolean
        (a boolean positive class), a class not seen in training, not a finite number. transform
        refuses those; the drift job reads the labels that arrive later with it and leaves them out."""
        target = target if isinstance(target, pd.Series) else pd.Series(target)
        if self.task == "binary":
            if isinstance(self.positive, bool):
                flags = boolean_values(target)
                return np.where(np.isnan(flags), np.nan, (flags == float(self.positive)).astype("float64"))
            wanted = str(category_key(self.positive)).lower()
            keys = pd.Series(category_keys(target), dtype=object)
            return keys.str.lower().eq(wanted).to_numpy(dtype="float64")
        if self.task == "multiclass":
            codes = pd.Categorical(as_entries(category_keys(target), self.classes), categories=self.classes).codes
            return np.where(codes < 0, np.nan, codes.astype("float64"))
        values = pd.to_numeric(target, errors="coerce").to_numpy(dtype="float64", na_value=np.nan) \
            if len(target) else np.zeros(0)
        return np.where(np.isfinite(values), values, np.nan)

    def transform(self, target: pd.Series) -> np.ndarray:
        target = target if isinstance(target, pd.Series) else pd.Series(target)
        nulls = int(missing_mask(target).sum())
        if nulls:
            raise LakerayError(f"target has {nulls} null value(s); gold should have none")
        values = self.read(target)
        bad = np.isnan(values)
        if self.task == "regression":
            bad |= np.abs(values) > FLOAT32_MAX
        if bad.any():
            if self.task == "binary":
                raise LakerayError(f"target has {int(bad.sum())} value(s) that are not booleans "
                                   f"(e.g. {_examples(target[bad])}); name the positive class "
                                   "with positive_label in the spec")
            if self.task == "multiclass":
                unseen = as_entries(category_keys(target[bad]), self.classes)
                raise LakerayError(f"target classes not seen in training: {sorted(set(unseen.tolist()))[:20]}")
            raise LakerayError(f"target has {int(bad.sum())} value(s) that are not finite numbers "
                               f"(e.g. {_examples(target[bad])})")
        return values.astype(np.float32)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> "TargetEncoder":
        return cls(**json.loads(text))
