"""The spec's baseline model, fitted on the training split: the floor a candidate must beat.

majority / mean: a constant (class frequencies or the training mean); logistic / linear:
scikit-learn's LogisticRegression / Ridge on standardised features (sparse one-hot). Refitted at every
evaluation on the same pinned training split, so it is deterministic and never stored.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from lakeray.features.preprocess import FeaturePipeline


@dataclasses.dataclass
class BaselineScorer:
    kind: str
    task: str
    features: FeaturePipeline
    model: object = None
    constant: np.ndarray | None = None

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        if self.constant is not None:
            out = np.tile(self.constant, (len(frame), 1))
            return out[:, 0] if self.task != "multiclass" else out
        x = self.features.transform(frame)
        if not x.shape[0]:   # Dask's empty metadata frame
            width = len(self.model.classes_) if self.task == "multiclass" else 0
            return np.zeros((0, width)) if width else np.zeros(0)
        if self.task == "binary":
            return self.model.predict_proba(x)[:, 1]
        if self.task == "multiclass":
            return self.model.predict_proba(x)
        return self.model.predict(x)


def fit_baseline(kind: str, task: str, train: pd.DataFrame, y: np.ndarray, features: dict[str, str],
                 num_class: int = 0) -> BaselineScorer:
    pipe = FeaturePipeline.fit(train, features, encoding="onehot", standardize=True)
    if kind in ("majority", "mean"):
        if task == "multiclass":
            constant = np.bincount(y.astype(int), minlength=num_class) / len(y)
        else:
            constant = np.array([float(np.mean(y))])
        return BaselineScorer(kind, task, pipe, constant=constant)
    if kind == "logistic":
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(max_iter=2000).fit(pipe.transform(train), y.astype(int))
    else:
        from sklearn.linear_model import Ridge

        model = Ridge(alpha=1.0).fit(pipe.transform(train), y)
    return BaselineScorer(kind, task, pipe, model=model)
