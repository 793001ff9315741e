"""Evidently's data-drift report on the same data as lakeray's drift job (benchmarks/drift_job.py).

Runs in its own virtualenv (benchmarks/requirements-evidently.txt; `make bench-install` makes it),
so Evidently's dependencies never enter lakeray's pinned environment:

    benchmarks/out/venv-evidently/bin/python benchmarks/evidently_drift.py REF.parquet CUR.parquet OUT.json

Times Report([DataDriftPreset()]).run(current, reference) and saving its HTML; reading the
Parquet files into pandas is timed apart (lakeray's timing includes its reads).
"""

import json
import sys
import time

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset


def main(reference_path: str, current_path: str, out_path: str) -> None:
    began = time.perf_counter()
    reference, current = pd.read_parquet(reference_path), pd.read_parquet(current_path)
    read_s = time.perf_counter() - began
    numeric = [c for c in reference.columns if c.startswith("n")]
    categorical = [c for c in reference.columns if c.startswith("c")]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    began = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(Dataset.from_pandas(current, data_definition=definition),
                                               Dataset.from_pandas(reference, data_definition=definition))
    run_s = time.perf_counter() - began
    snapshot.save_html(out_path.replace(".json", ".html"))
    total_s = time.perf_counter() - began
    drifted = []       # ValueDrift(column=..., method=..., threshold=t): a distance, drift when >= t
    for metric in snapshot.dict()["metrics"]:
        name = str(metric.get("metric_name", ""))
        if name.startswith("ValueDrift(") and float(metric["value"]) >= float(metric["config"]["threshold"]):
            drifted.append(metric["config"]["column"])
    with open(out_path, "w") as fh:
        json.dump({"rows": len(current), "reference_rows": len(reference), "read_s": read_s, "run_s": run_s,
                   "report_s": total_s, "drifted": sorted(drifted)}, fh)


if __name__ == "__main__":
    main(*sys.argv[1:4])
