"""The tune job: pinned gold snapshot -> Ray Tune search -> leaderboard in MLflow."""

from __future__ import annotations

import logging

from lakeray.errors import LakerayError
from lakeray.features.handoff import latest_gold_version, load_splits
from lakeray.lakehouse import Lakehouse
from lakeray.registry.tracking import TAG, configure_tracking, lineage_tags
from lakeray.spec import PipelineSpec, spec_hash
from lakeray.tune.search import TuneOutcome, run_tune

log = logging.getLogger(__name__)


def resolve_gold_version(gold_path: str, requested: str | int | None) -> int:
    """An explicit version, or 'latest' resolved now (and recorded): never an implicit read."""
    if requested is None:
        raise LakerayError("--gold-version is required: a version number, or 'latest' to pin the newest one now")
    if str(requested) == "latest":
        version = latest_gold_version(gold_path)
        log.info("pinned gold %s at its newest version, %d", gold_path, version)
        return version
    try:
        return int(requested)
    except ValueError:
        raise LakerayError(f"--gold-version must be a number or 'latest', got {requested!r}") from None


def log_tune_run(tracking, spec: PipelineSpec, outcome: TuneOutcome, tags: dict, smoke: bool) -> str:
    """One MLflow run for the search (leaderboard artifact) and a child run per trial."""
    with tracking.start_run("tune", tags) as parent:
        parent.log_params({"trials": len(outcome.leaderboard), "smoke_test": smoke,
                           "experiments": ",".join(outcome.experiment_paths.values()), "best_family": outcome.best["family"]})
        parent.log_metrics({f"best_{spec.metric.primary}": outcome.best["score"],
                            "wall_seconds": outcome.wall_seconds,
                            "trial_seconds_sum": sum(r["seconds"] for r in outcome.leaderboard),
                            "degenerate_trials": sum(bool(r.get("degenerate")) for r in outcome.leaderboard)})
        parent.log_json(outcome.leaderboard, "leaderboard.json")
        for rank, row in enumerate(outcome.leaderboard, 1):
            with tracking.start_run("tune-trial", {**tags, f"{TAG}family": row["family"]},
                                    run_name=f"{rank:02d}-{row['family']}", parent_run_id=parent.run_id) as child:
                child.log_params({"family": row["family"], **row["params"]})
                child.log_metrics({spec.metric.primary: row["score"], "rounds": row["rounds"],
                                   "seconds": row["seconds"], "rank": rank, "degenerate": int(bool(row.get("degenerate")))})
                child.set_tag(f"{TAG}stopped", row.get("stopped", ""))
        return parent.run_id


def run_tune_job(spec: PipelineSpec, settings, gold_version, *, smoke: bool = False, fresh: bool = False) -> dict:
    from lakeray.raysession import ray_session

    lake = Lakehouse.for_pipeline(settings, spec)
    version = resolve_gold_version(lake.gold, gold_version)
    snapshot = load_splits(lake.gold, version)
    digest = spec_hash(spec)
    tracking = configure_tracking(settings, spec.name)
    with ray_session(settings):
        outcome = run_tune(spec, settings, snapshot, spec_digest=digest, smoke=smoke, fresh=fresh)
    tags = {**lineage_tags(digest, lake.gold, version), f"{TAG}rows": snapshot.lineage()["rows"]}
    run_id = log_tune_run(tracking, spec, outcome, tags, smoke)
    log.info("tune run %s: best %s %s=%.4f", run_id, outcome.best["family"], spec.metric.primary, outcome.best["score"])
    return {"run_id": run_id, "outcome": outcome, "gold_version": version}
