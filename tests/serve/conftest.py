"""A tiny model bundle for the serving tests that need a real model but not the whole pipeline:
a 5-round XGBoost on a synthetic churn-shaped table, saved as a verified bundle (seconds, no
Spark, no registry). The Serve app gets it through an injected BundleLoader."""

from __future__ import annotations

import pytest

from tests.support import settings_in, synthetic_snapshot


def build_tiny_champion(spec, folder):
    import xgboost

    from lakeray.features.preprocess import FeaturePipeline, TargetEncoder
    from lakeray.models.bundle import ModelBundle
    from lakeray.models.families import dmatrix

    settings = settings_in(folder)
    train = synthetic_snapshot(spec, rows=300).frames["train"]
    features = FeaturePipeline.fit(train, dict(spec.features))
    target = TargetEncoder.fit(train[spec.target], spec)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 1},
                            dmatrix(features.transform(train), target.transform(train[spec.target]), features.feature_types),
                            num_boost_round=5)
    manifest = {"pipeline": spec.name, "task": spec.task, "family": "xgboost", "params": {}, "rounds": 5,
                "threshold": 0.5, "positive_label": spec.positive_label, "feature_columns": features.output_columns}
    bundle = ModelBundle(booster, features, target, manifest)
    bundle_dir = bundle.save(folder / "bundle")
    return {"settings": settings, "bundle": bundle, "bundle_dir": bundle_dir}


@pytest.fixture(scope="session")
def tiny_champion(churn_spec, tmp_path_factory):
    return build_tiny_champion(churn_spec, tmp_path_factory.mktemp("tiny"))
