"""The whole lifecycle once: ingest -> prepare -> tune -> train -> evaluate -> gate -> alias.

Used by `lakeray run pipelines/<name>.yaml` and by the drift job when drift.retrain.enabled.
Serving replicas follow the `champion` alias (serve.reload_s), so a promotion is the hot swap.
A candidate the gate refuses is reported, not raised: the current champion keeps serving.
"""

from __future__ import annotations

import logging

from lakeray.errors import GateError
from lakeray.lifecycle import run_data_stages, run_ml_stages
from lakeray.spec import PipelineSpec

log = logging.getLogger(__name__)


def run_lifecycle(spark, spec: PipelineSpec, settings, *, smoke: bool = False) -> dict:
    data = run_data_stages(spark, spec, settings, ("ingest", "prepare"))
    gold = data["prepare"].gold.version
    try:
        ml = run_ml_stages(spec, settings, ("tune", "train", "evaluate"), gold_version=gold, smoke=smoke)
    except GateError as exc:
        log.warning("retrained model not promoted; the current champion keeps serving: %s", exc)
        return {"gold_version": gold, "promoted_version": None, "failed_checks": exc.failed, "data": data,
                "ml": exc.stages}
    promoted = ml["evaluate"]["promoted_version"]
    log.info("lifecycle %s: gold v%d -> champion version %s", spec.name, gold, promoted)
    return {"gold_version": gold, "promoted_version": promoted, "failed_checks": [], "runs": {
        stage: out["run_id"] for stage, out in ml.items()}, "data": data, "ml": ml}
