"""Model inputs: the pinned gold splits, and preprocessing fitted on the training split only."""

from lakeray.features.handoff import GoldSnapshot, load_splits
from lakeray.features.preprocess import FeaturePipeline, TargetEncoder

__all__ = ["FeaturePipeline", "GoldSnapshot", "TargetEncoder", "load_splits"]
