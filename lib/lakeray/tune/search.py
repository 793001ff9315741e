"""Model selection with Ray Tune: per family, Optuna over its space (from conf) and ASHA.

Each family gets its own search (its share of tune.num_samples, or families.<f>.num_samples):
ASHA compares trials at equal numbers of reports, which only means the same thing within a
family (a linear model has converged after 60 rounds, low-eta boosting has not), and one
Optuna study per family cannot collapse onto the family that learns fastest. Parameters are
named `<family>/<param>`, which Ray unflattens to {"family": f, f: {...}}; the leaderboard
merges the families. Each experiment is named after the pipeline, the pinned gold version, a
hash of the search settings and the family; running the job again restores it
(Tuner.restore), so an interrupted search resumes without re-running finished trials.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import posixpath
import shutil
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
_COMPLETED_TRIALS = [0]   # trials completed in this process, for the tune.trial_complete crash point


@dataclasses.dataclass
class TuneOutcome:
    experiment_paths: dict[str, str]     # family -> Tune experiment folder
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
    """One family's Optuna search space (picklable: Tune saves the searcher with the experiment)."""

    def __init__(self, family: str, space: dict):
        self.family, self.space = family, space

    def __call__(self, otrial):
        for name, dist in self.space.items():
            key = f"{self.family}/{name}"
            if dist["type"] == "categorical":
                otrial.suggest_categorical(key, dist["values"])
            elif dist["type"] == "int":
                otrial.suggest_int(key, int(dist["low"]), int(dist["high"]))
            else:
                otrial.suggest_float(key, dist["low"], dist["high"], log=dist["type"] == "loguniform")
        return {"family": self.family}


def samples_per_family(conf: dict) -> dict[str, int]:
    """families.<f>.num_samples where set, else an even share of tune.num_samples (at least 1)."""
    families = sorted(conf["families"])
    share, extra = divmod(int(conf["num_samples"]), len(families))
    return {f: int(conf["families"][f].get("num_samples") or max(1, share + (1 if i < extra else 0)))
            for i, f in enumerate(families)}


def experiment_name(spec: PipelineSpec, snapshot: GoldSnapshot, conf: dict, spec_digest: str) -> str:
    digest = hashlib.sha256(json.dumps([conf, spec_digest], sort_keys=True).encode()).hexdigest()[:10]
    return f"tune-{spec.name}-gold{snapshot.version}-{digest}"


def _crash_callback():
    import ray.tune

    class CrashPoint(ray.tune.Callback):
        """LAKERAY_CRASH_AT=tune.trial_complete:<n> kills the driver when the n-th trial of the
        process (all families together) completes."""

        def on_trial_complete(self, iteration, trials, trial, **info):
            _COMPLETED_TRIALS[0] += 1
            crash_point("tune.trial_complete", str(_COMPLETED_TRIALS[0]))

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

    conf = tune_settings(settings, smoke)
    name = experiment_name(spec, snapshot, conf, spec_digest)
    storage = settings.path("ray_storage")
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
    began = time.perf_counter()
    board, paths, restored = [], {}, False
    for family, samples in samples_per_family(conf).items():
        paths[family] = posixpath.join(storage, f"{name}-{family}")
        grid, was_restored = _search_family(spec, conf, family, samples, trainable, storage, f"{name}-{family}",
                                            fresh, max_concurrent)
        restored |= was_restored
        rows = _leaderboard(grid, conf)
        if not rows:
            errors = "; ".join(str(e) for e in grid.errors)[:2000]
            raise LakerayError(f"tuning {name}: no {family} trial finished ({grid.num_errors} error(s)): {errors}")
        board += rows
    board.sort(key=lambda r: r["score"], reverse=spec.higher_is_better)
    return TuneOutcome(paths, board, restored, time.perf_counter() - began)


def _search_family(spec, conf, family, samples, trainable, storage, name, fresh, max_concurrent):
    """One family's Tune experiment, restored if an earlier run of the same search left one."""
    import ray.tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    path = posixpath.join(storage, name)
    if fresh and os.path.isdir(path):
        shutil.rmtree(path)
    if not fresh and ray.tune.Tuner.can_restore(path):
        log.info("restoring the interrupted or finished search %s (finished trials are kept)", path)
        tuner = ray.tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True)
        return tuner.fit(), True
    fam = conf["families"][family]
    rounds = max(1, round(fam["rounds"] * conf["rounds_scale"]))
    max_t = math.ceil(rounds / conf["report_every"])
    mode = "max" if spec.higher_is_better else "min"
    log.info("searching %s: %d trial(s), up to %d rounds each", family, samples, rounds)
    tuner = ray.tune.Tuner(
        trainable,
        tune_config=ray.tune.TuneConfig(
            num_samples=samples, max_concurrent_trials=max_concurrent or int(conf["max_concurrent_trials"]),
            search_alg=OptunaSearch(space=DefineByRun(family, fam.get("space") or {}), metric="score", mode=mode,
                                    seed=int(conf["seed"])),
            scheduler=ASHAScheduler(time_attr="training_iteration", metric="score", mode=mode,
                                    max_t=max_t, grace_period=min(max_t, int(conf["scheduler"]["grace_period"])),
                                    reduction_factor=float(conf["scheduler"]["reduction_factor"]))),
        run_config=ray.tune.RunConfig(storage_path=storage, name=name, callbacks=[_crash_callback()],
                                      failure_config=ray.tune.FailureConfig(max_failures=1), verbose=0),
    )
    return tuner.fit(), False


def format_leaderboard(board: list[dict], metric: str, top: int = 10) -> str:
    lines = [f"{'#':>2} {'family':<14} {metric:>10} {'rounds':>6} {'sec':>6}  params"]
    for i, row in enumerate(board[:top], 1):
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(row["params"].items()))
        flag = " (early-stopped)" if row["stopped_early"] else ""
        lines.append(f"{i:>2} {row['family']:<14} {row['score']:>10.4f} {row['rounds']:>6} {row['seconds']:>6.1f}  {params}{flag}")
    return "\n".join(lines)
