"""Preprocessing fitted on the training split only, stored as JSON next to the model.

The same object turns a pandas frame into the model's matrix at training, evaluation, batch
scoring and serving time, so there is no training/serving skew. Numeric features are imputed
with the training median (and optionally standardised, for linear models); categorical
features are one-hot encoded over the training vocabulary, with an `__other__` column for
values never seen in training; boolean features become 0/1 with the training mode for nulls.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from lakeray.errors import LakerayError
from lakeray.spec.models import PipelineSpec

OTHER = "__other__"
FORMAT = "lakeray.feature_pipeline/v1"


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
                values = pd.to_numeric(col, errors="coerce").astype(float)
                median = values.median()
                pipe.medians[name] = 0.0 if math.isnan(median) else float(median)
                filled = values.fillna(pipe.medians[name])
                pipe.means[name] = float(filled.mean())
                std = float(filled.std(ddof=0))
                pipe.stds[name] = std if std > 0 else 1.0
            elif kind == "categorical":
                counts = col.dropna().astype(str).value_counts()
                top = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable").index[:max_categories]
                pipe.vocab[name] = sorted(top)
            else:
                mode = col.dropna().astype(bool).mode()
                pipe.modes[name] = float(mode.iloc[0]) if len(mode) else 0.0
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
        blocks = []
        for name, kind in self.features.items():
            col = frame[name]
            if kind == "numeric":
                values = pd.to_numeric(col, errors="coerce").astype(float).fillna(self.medians[name]).to_numpy()
                if self.standardize:
                    values = (values - self.means[name]) / self.stds[name]
                blocks.append(values[:, None])
            elif kind == "categorical":
                vocab = self.vocab[name]
                index = {v: i for i, v in enumerate(vocab)}
                codes = np.array([index.get(str(v), len(vocab)) if v is not None and v == v else len(vocab)
                                  for v in col], dtype=np.int64)
                onehot = np.zeros((len(col), len(vocab) + 1), dtype=np.float32)
                onehot[np.arange(len(col)), codes] = 1.0
                blocks.append(onehot)
            else:
                values = col.astype("float64").fillna(self.modes[name]).to_numpy() if len(col) else np.zeros(0)
                blocks.append(values[:, None])
        if not blocks:
            return np.zeros((len(frame), 0), dtype=np.float32)
        return np.hstack(blocks).astype(np.float32)

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
            return cls("multiclass", classes=sorted(train_target.dropna().astype(str).unique().tolist()))
        return cls("regression")

    def transform(self, target: pd.Series) -> np.ndarray:
        if target.isna().any():
            raise LakerayError(f"target has {int(target.isna().sum())} null value(s); gold should have none")
        if self.task == "binary":
            positive = self.positive
            if isinstance(positive, bool):
                return target.astype(bool).eq(positive).astype(np.float32).to_numpy()
            return target.astype(str).str.lower().eq(str(positive).lower()).astype(np.float32).to_numpy()
        if self.task == "multiclass":
            index = {c: i for i, c in enumerate(self.classes)}
            unknown = sorted(set(target.astype(str)) - set(index))
            if unknown:
                raise LakerayError(f"target classes not seen in training: {unknown}")
            return target.astype(str).map(index).astype(np.float32).to_numpy()
        return target.astype(float).to_numpy(dtype=np.float32)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> "TargetEncoder":
        return cls(**json.loads(text))
