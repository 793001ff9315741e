"""Model inputs: the pinned gold splits, and preprocessing fitted on the training split only."""

from lakeray.features.handoff import GoldSnapshot, latest_gold_version, load_splits
from lakeray.features.matrices import Matrices, build_matrices, family_matrices
from lakeray.features.preprocess import FeaturePipeline, TargetEncoder

__all__ = ["FeaturePipeline", "GoldSnapshot", "Matrices", "TargetEncoder", "build_matrices", "family_matrices",
           "latest_gold_version", "load_splits"]
