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
    splits: dict[str, tuple[np.ndarray, np.ndarray]]

    @property
    def num_class(self) -> int:
        return len(self.target.classes)


def build_matrices(spec: PipelineSpec, snapshot: GoldSnapshot, standardize: bool = False,
                   splits: tuple[str, ...] = ("train", "validation")) -> Matrices:
    train = snapshot.frames["train"]
    features = FeaturePipeline.fit(train, dict(spec.features), standardize=standardize)
    target = TargetEncoder.fit(train[spec.target], spec)
    out = {name: (features.transform(snapshot.frames[name]), target.transform(snapshot.frames[name][spec.target]))
           for name in splits}
    return Matrices(features, target, out)
