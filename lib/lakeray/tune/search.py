"""Model selection with Ray Tune: Optuna over families and their spaces (from conf), ASHA.

The Optuna space is define-by-run: a trial first draws a family, then that family's
hyper-parameters (named `<family>/<param>`, which Ray unflattens to {"family": f, f: {...}}).
The experiment is named after the pipeline, the pinned gold version and a hash of the search
settings; running the job again with the same name restores it (Tuner.restore), so an
interrupted search resumes without re-running finished trials.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import posixpath
import time

from lakeray.errors import ConfigError, LakerayError
from lakeray.faults import crash_point
from lakeray.features.handoff import GoldSnapshot
from lakeray.features.matrices import build_matrices
from lakeray.models.families import FAMILIES
from lakeray.spec.models import PipelineSpec
from lakeray.tune.resources import trial_resources
from lakeray.tune.trainable import split_config, trial

log = logging.getLogger(__name__)
KINDS = ("loguniform", "uniform", "int", "categorical")


@dataclasses.dataclass
class TuneOutcome:
    experiment_path: str
    leaderboard: list[dict]
    restored: bool
    wall_seconds: float

    @property
    def best(self) -> dict:
        return self.leaderboard[0]


def tune_settings(settings, smoke: bool = False) -> dict:
    conf = json.loads(json.dumps(settings["tune"]))
    if smoke:
        conf["num_samples"] = conf["smoke"]["num_samples"]
        conf["rounds_scale"] = conf["smoke"]["rounds_scale"]
    conf.setdefault("rounds_scale", 1.0)
    unknown = set(conf["families"]) - set(FAMILIES)
    if unknown or not conf["families"]:
        raise ConfigError(f"tune.families: unknown family {sorted(unknown)}; known: {', '.join(FAMILIES)}")
    for family, fam in conf["families"].items():
        for name, dist in (fam.get("space") or {}).items():
            if dist.get("type") not in KINDS:
                raise ConfigError(f"tune.families.{family}.space.{name}: type must be one of {', '.join(KINDS)}, "
                                  f"got {dist.get('type')!r}")
            if dist["type"] != "categorical" and not dist.get("low", 0) <= dist.get("high", -1):
                raise ConfigError(f"tune.families.{family}.space.{name}: needs low <= high")
            if dist["type"] == "loguniform" and dist["low"] <= 0:
                raise ConfigError(f"tune.families.{family}.space.{name}: loguniform needs low > 0")
    return conf


class DefineByRun:
    """The Optuna search space: family first, then that family's parameters (picklable,
    because Tune saves the searcher with the experiment)."""

    def __init__(self, families: dict):
        self.families = families

    def __call__(self, otrial):
        family = otrial.suggest_categorical("family", sorted(self.families))
        for name, dist in (self.families[family].get("space") or {}).items():
            key = f"{family}/{name}"
            if dist["type"] == "categorical":
                otrial.suggest_categorical(key, dist["values"])
            elif dist["type"] == "int":
                otrial.suggest_int(key, int(dist["low"]), int(dist["high"]))
            else:
                otrial.suggest_float(key, dist["low"], dist["high"], log=dist["type"] == "loguniform")
        return None


def experiment_name(spec: PipelineSpec, snapshot: GoldSnapshot, conf: dict, spec_digest: str) -> str:
    digest = hashlib.sha256(json.dumps([conf, spec_digest], sort_keys=True).encode()).hexdigest()[:10]
    return f"tune-{spec.name}-gold{snapshot.version}-{digest}"


def _crash_callback():
    import ray.tune

    class CrashPoint(ray.tune.Callback):
        """LAKERAY_CRASH_AT=tune.trial_complete:<n> kills the driver when the n-th trial completes."""

        completed = 0

        def on_trial_complete(self, iteration, trials, trial, **info):
            CrashPoint.completed += 1
            crash_point("tune.trial_complete", str(CrashPoint.completed))

    return CrashPoint()


def _leaderboard(grid, conf: dict) -> list[dict]:
    rows = []
    for result in grid:
        if result.error or not result.metrics or "score" not in result.metrics:
            continue
        family, hyper = split_config(result.config)
        rounds = result.metrics["rounds"]
        target = max(1, int(round(conf["families"][family]["rounds"] * conf["rounds_scale"])))
        rows.append({"trial_id": result.metrics.get("trial_id"), "family": family, "params": hyper,
                     "score": float(result.metrics["score"]), "rounds": int(rounds),
                     "stopped_early": rounds < target, "seconds": float(result.metrics.get("time_total_s", 0.0)),
                     "node_id": result.metrics.get("node_id")})
    return rows


def run_tune(spec: PipelineSpec, settings, snapshot: GoldSnapshot, *, spec_digest: str, smoke: bool = False,
             fresh: bool = False, max_concurrent: int | None = None) -> TuneOutcome:
    """Search the configured families on the pinned gold snapshot; ray must be initialised."""
    import ray
    import ray.tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    conf = tune_settings(settings, smoke)
    name = experiment_name(spec, snapshot, conf, spec_digest)
    storage = settings.path("ray_storage")
    path = posixpath.join(storage, name)
    resources = trial_resources(float(conf["resources"]["cpu"]), float(conf["resources"].get("gpu", 0)),
                                ray.cluster_resources())
    plain = build_matrices(spec, snapshot)
    standardized = build_matrices(spec, snapshot, standardize=True)
    data = {"families": conf["families"], "task": spec.task, "metric": spec.metric.primary,
            "num_class": plain.num_class, "report_every": int(conf["report_every"]),
            "rounds_scale": conf["rounds_scale"], "nthread": max(1, int(math.floor(resources["cpu"]))),
            "plain": (plain.splits["train"], plain.splits["validation"]),
            "standardized": (standardized.splits["train"], standardized.splits["validation"])}
    trainable = ray.tune.with_resources(ray.tune.with_parameters(trial, data=data), resources)
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", str(conf.get("experiment_checkpoint_s", 2)))
    mode = "max" if spec.higher_is_better else "min"
    began = time.perf_counter()
    restored = not fresh and ray.tune.Tuner.can_restore(path)
    if restored:
        log.info("restoring the interrupted or finished search %s (finished trials are kept)", path)
        tuner = ray.tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        max_t = max(math.ceil(max(1, round(f["rounds"] * conf["rounds_scale"])) / conf["report_every"])
                    for f in conf["families"].values())
        tuner = ray.tune.Tuner(
            trainable,
            tune_config=ray.tune.TuneConfig(
                metric="score", mode=mode, num_samples=int(conf["num_samples"]),
                max_concurrent_trials=max_concurrent or int(conf["max_concurrent_trials"]),
                search_alg=OptunaSearch(space=DefineByRun(conf["families"]), metric="score", mode=mode,
                                        seed=int(conf["seed"])),
                scheduler=ASHAScheduler(time_attr="training_iteration", max_t=max_t,
                                        grace_period=int(conf["scheduler"]["grace_period"]),
                                        reduction_factor=float(conf["scheduler"]["reduction_factor"]))),
            run_config=ray.tune.RunConfig(storage_path=storage, name=name, callbacks=[_crash_callback()],
                                          failure_config=ray.tune.FailureConfig(max_failures=1), verbose=0),
        )
    grid = tuner.fit()
    board = sorted(_leaderboard(grid, conf), key=lambda r: r["score"], reverse=spec.higher_is_better)
    if not board:
        errors = "; ".join(str(e) for e in grid.errors)[:2000]
        raise LakerayError(f"tuning {name}: no trial finished ({grid.num_errors} error(s)): {errors}")
    return TuneOutcome(path, board, restored, time.perf_counter() - began)


def format_leaderboard(board: list[dict], metric: str, top: int = 10) -> str:
    lines = [f"{'#':>2} {'family':<14} {metric:>10} {'rounds':>6} {'sec':>6}  params"]
    for i, row in enumerate(board[:top], 1):
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(row["params"].items()))
        flag = " (early-stopped)" if row["stopped_early"] else ""
        lines.append(f"{i:>2} {row['family']:<14} {row['score']:>10.4f} {row['rounds']:>6} {row['seconds']:>6.1f}  {params}{flag}")
    return "\n".join(lines)
