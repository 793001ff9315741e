"""tune -> train -> evaluate (smoke sizes, one run) on the churn gold with nulls injected into every
feature and sensitive attribute in every split, as a real Delta table. Training reads it with
delta-rs (None), evaluation with Dask (string[pyarrow]: pd.NA); before the fix evaluate died with
`TypeError: boolean value of NA is ambiguous` after tune and train had passed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from lakeray.evaluate.metrics import MISSING_GROUP
from lakeray.lakehouse import Lakehouse
from lakeray.lifecycle import run_ml_stages
from tests.support import settings_in


def test_tune_train_evaluate_with_nulls_in_every_feature_and_split(churn_world, easy_spec, ray_local, tmp_path):
    settings = settings_in(tmp_path)
    gold = churn_world["prepared"].gold
    table = DeltaTable(gold.path, version=gold.version).to_pyarrow_table()
    frame = table.to_pandas()
    rng = np.random.default_rng(1)
    for name in [*easy_spec.features, *easy_spec.sensitive_attributes]:
        frame[name] = frame[name].astype(object).where(rng.random(len(frame)) >= 0.1, None)
    for split in ("train", "validation", "test"):
        part = frame[frame["split"] == split]
        assert all(part[c].isna().any() for c in easy_spec.features), split
    lake = Lakehouse.for_pipeline(settings, easy_spec)
    write_deltalake(lake.gold, pa.Table.from_pandas(frame, schema=table.schema, preserve_index=False), partition_by=["split"])

    out = run_ml_stages(easy_spec, settings, ("tune", "train", "evaluate"), gold_version=0, smoke=True)
    ev = out["evaluate"]
    assert ev["promoted_version"] is not None and 0.5 < ev["metrics"]["candidate"]["roc_auc"] <= 1
    test_rows = int((frame["split"] == "test").sum())
    for attribute, audit in ev["fairness"].items():
        groups = {**audit["groups"], **audit["small_groups"]}
        assert MISSING_GROUP in groups and not {"None", "nan", "<NA>"} & set(groups), attribute
        assert sum(g["count"] for g in groups.values()) == test_rows
