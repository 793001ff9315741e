"""Gold splits -> model matrices, with the preprocessing fitted on the training split only."""

from __future__ import annotations

import dataclasses

import numpy as np

from lakeray.features.handoff import GoldSnapshot
from lakeray.features.preprocess import FeaturePipeline, TargetEncoder
from lakeray.spec.models import PipelineSpec


@dataclasses.dataclass
class Matrices:
    features: FeaturePipeline
    target: TargetEncoder
    splits: dict[str, tuple[object, np.ndarray]]      # name -> (float32 ndarray or CSR, labels)

    @property
    def num_class(self) -> int:
        return len(self.target.classes)

    @property
    def feature_types(self) -> list[str] | None:
        return self.features.feature_types


def build_matrices(spec: PipelineSpec, snapshot: GoldSnapshot, *, encoding: str = "native", standardize: bool = False,
                   max_categories: int | None = None, splits: tuple[str, ...] = ("train", "validation")) -> Matrices:
    train = snapshot.frames["train"]
    features = FeaturePipeline.fit(train, dict(spec.features), encoding=encoding, standardize=standardize,
                                   max_categories=max_categories)
    target = TargetEncoder.fit(train[spec.target], spec)
    out = {name: (features.transform(snapshot.frames[name]), target.transform(snapshot.frames[name][spec.target]))
           for name in splits}
    return Matrices(features, target, out)


def family_matrices(spec: PipelineSpec, snapshot: GoldSnapshot, family_conf: dict, feature_conf: dict | None = None,
                    splits: tuple[str, ...] = ("train", "validation")) -> Matrices:
    """The matrices a model family trains on: its `encoding` (native unless it says onehot), its
    `standardize`, and the category limits of the `features` settings."""
    feature_conf = feature_conf or {}
    encoding = family_conf.get("encoding") or "native"
    limit = feature_conf.get("max_categories" if encoding == "native" else "onehot_max_categories")
    return build_matrices(spec, snapshot, encoding=encoding, standardize=bool(family_conf.get("standardize")),
                          max_categories=limit, splits=splits)
