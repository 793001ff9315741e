"""Model selection with Ray Tune: per family, Optuna over its space (from conf) and ASHA.

Each family gets its own search: ASHA compares trials at equal numbers of reports, which only
means the same thing within a family (a linear model has converged after 60 rounds, low-eta
boosting has not), and one Optuna study per family cannot collapse onto the family that learns
fastest. The trial budget (tune.num_samples) is spent where the metric moves: the cheap
baselines get a small fixed `share` each, the boosted family the rest. Every boosted trial
stops early on the validation split under a generous round cap, and the search space can
depend on the data: a distribution's `by_rows` replaces its bounds from a number of training
rows up. Parameters are named `<family>/<param>`, which Ray unflattens to {"family": f, f: {...}};
the leaderboard merges the families, degenerate trials (constant predictions) last. Each
experiment is named after the pipeline, the pinned gold version, a hash of the search settings
and the family; running the job again restores it (Tuner.restore), so an interrupted search
resumes without re-running finished trials (a family whose saved state the kill tore is searched
afresh).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import logging
import math
import os
import posixpath
import shutil
import time
import uuid

from lakeray.errors import ConfigError, LakerayError
from lakeray.faults import crash_point
from lakeray.features.handoff import GoldSnapshot
from lakeray.features.matrices import family_matrices
from lakeray.lakehouse.fs import arrow_filesystem
from lakeray.models.families import FAMILIES
from lakeray.raysession import scoped_env
from lakeray.spec.models import PipelineSpec
from lakeray.tune.resources import trial_resources
from lakeray.tune.trainable import matrix_key, round_cap, split_config, trial

log = logging.getLogger(__name__)
KINDS = ("loguniform", "uniform", "int", "categorical")
# TuneConfig settings every search shares (benchmarks/tune_selection.py runs its trials with them).
# reuse_actors: each concurrent slot keeps one actor from trial to trial; a new actor per trial (a
# worker process importing ray.tune, xgboost and sklearn, then the Trainable's setup) cost 2-9 s on
# 2 cores, between trials, where no trial's clock runs.
TUNE_CONFIG = {"reuse_actors": True}
# How often Tune saves the experiment state (the resume point): tune.experiment_checkpoint_s for the
# duration of a search, unless the environment sets it; Tune reads it from the environment.
CHECKPOINT_PERIOD_ENV = "TUNE_GLOBAL_CHECKPOINT_S"


@dataclasses.dataclass
class TuneOutcome:
    experiment_paths: dict[str, str]     # family -> Tune experiment folder
    leaderboard: list[dict]
    restored: bool
    wall_seconds: float

    @property
    def best(self) -> dict:
        return self.leaderboard[0]


def tune_settings(settings, smoke: bool = False, rows: int | None = None) -> dict:
    """The tune section, checked, with the smoke sizes applied and each `by_rows` resolved for
    `rows` training rows (the bounds of the largest threshold <= rows replace low/high)."""
    conf = json.loads(json.dumps(settings["tune"]))
    if smoke:
        conf["num_samples"] = conf["smoke"]["num_samples"]
        conf["rounds_scale"] = conf["smoke"]["rounds_scale"]
    conf.setdefault("rounds_scale", 1.0)
    conf.setdefault("early_stopping_rounds", 50)
    unknown = set(conf["families"]) - set(FAMILIES)
    if unknown or not conf["families"]:
        raise ConfigError(f"tune.families: unknown family {sorted(unknown)}; known: {', '.join(FAMILIES)}")
    for family, fam in conf["families"].items():
        if fam.get("encoding", "native") not in ("native", "onehot"):
            raise ConfigError(f"tune.families.{family}.encoding: native or onehot, got {fam['encoding']!r}")
        for name, dist in (fam.get("space") or {}).items():
            where = f"tune.families.{family}.space.{name}"
            resolve_by_rows(dist, rows, where)
            if dist.get("type") not in KINDS:
                raise ConfigError(f"{where}: type must be one of {', '.join(KINDS)}, got {dist.get('type')!r}")
            if dist["type"] != "categorical" and not dist.get("low", 0) <= dist.get("high", -1):
                raise ConfigError(f"{where}: needs low <= high")
            if dist["type"] == "loguniform" and dist["low"] <= 0:
                raise ConfigError(f"{where}: loguniform needs low > 0")
    return conf


def resolve_by_rows(dist: dict, rows: int | None, where: str) -> dict:
    """Replace low/high (or values) with those of the largest `by_rows` threshold <= rows, in place."""
    steps = dist.pop("by_rows", None) or {}
    try:
        thresholds = sorted((int(k), v) for k, v in steps.items())
    except (TypeError, ValueError):
        raise ConfigError(f"{where}.by_rows: keys must be row counts, got {sorted(steps)}") from None
    for threshold, bounds in thresholds:
        extra = set(bounds) - {"low", "high", "values"}
        if extra:
            raise ConfigError(f"{where}.by_rows.{threshold}: only low, high and values may change, not {sorted(extra)}")
        if rows is not None and rows >= threshold:
            dist.update(bounds)
    return dist


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
    """Trials per family: families.<f>.num_samples where set; else its `share` of tune.num_samples
    (at least 1); the families with neither split what is left (at least 1 each)."""
    total, fams = int(conf["num_samples"]), conf["families"]
    out = {f: int(fams[f]["num_samples"]) for f in sorted(fams) if fams[f].get("num_samples")}
    out.update({f: max(1, int(round(total * float(fams[f]["share"])))) for f in sorted(fams)
                if f not in out and fams[f].get("share")})
    rest = [f for f in sorted(fams) if f not in out]
    if rest:
        share, extra = divmod(max(0, total - sum(out.values())), len(rest))
        out.update({f: max(1, share + (1 if i < extra else 0)) for i, f in enumerate(rest)})
    return dict(sorted(out.items()))


def experiment_name(spec: PipelineSpec, snapshot: GoldSnapshot, conf: dict, spec_digest: str) -> str:
    digest = hashlib.sha256(json.dumps([conf, spec_digest], sort_keys=True).encode()).hexdigest()[:10]
    return f"tune-{spec.name}-gold{snapshot.version}-{digest}"


def _crash_callback(completed: list[int]):
    """`completed` is one search's count of completed trials, shared by its families' callbacks."""
    import ray.tune

    class CrashPoint(ray.tune.Callback):
        """LAKERAY_CRASH_AT=tune.trial_complete:<n> kills the driver when the n-th trial of the
        search (all families together) completes."""

        def on_trial_complete(self, iteration, trials, trial, **info):
            completed[0] += 1
            crash_point("tune.trial_complete", str(completed[0]))

    return CrashPoint()


def _leaderboard(grid, conf: dict) -> list[dict]:
    rows = []
    for result in grid:
        if result.error or not result.metrics or "score" not in result.metrics:
            continue
        family, hyper = split_config(result.config)
        rounds, cap = int(result.metrics["rounds"]), round_cap(conf["families"][family], conf["rounds_scale"])
        final = bool(result.metrics.get("final", True))
        rows.append({"trial_id": result.metrics.get("trial_id"), "family": family, "params": hyper,
                     "score": float(result.metrics["score"]), "rounds": rounds, "round_cap": cap,
                     "stopped": "scheduler" if not final else "early_stopping" if rounds < cap else "round_cap",
                     "stopped_early": not final or rounds < cap, "degenerate": bool(result.metrics.get("degenerate")),
                     "seconds": float(result.metrics.get("time_total_s", 0.0)), "node_id": result.metrics.get("node_id")})
    return rows


def rank(board: list[dict], higher_is_better: bool) -> list[dict]:
    """Best first; degenerate trials (constant predictions) after every real one."""
    sign = -1.0 if higher_is_better else 1.0
    return sorted(board, key=lambda r: (r.get("degenerate", False), sign * r["score"]))


def run_tune(spec: PipelineSpec, settings, snapshot: GoldSnapshot, *, spec_digest: str, smoke: bool = False,
             fresh: bool = False, max_concurrent: int | None = None) -> TuneOutcome:
    """Search the configured families on the pinned gold snapshot; ray must be initialised."""
    import ray
    import ray.tune

    conf = tune_settings(settings, smoke, rows=len(snapshot.frames["train"]))
    name = experiment_name(spec, snapshot, conf, spec_digest)
    storage = settings.path("ray_storage")
    resources = trial_resources(float(conf["resources"]["cpu"]), float(conf["resources"].get("gpu", 0)),
                                ray.cluster_resources())
    matrices, num_class = {}, 0
    for family in samples_per_family(conf):
        key = matrix_key(conf["families"][family])
        if key not in matrices:
            mats = family_matrices(spec, snapshot, conf["families"][family], settings.get("features"))
            matrices[key] = (*mats.splits["train"], *mats.splits["validation"], mats.feature_types)
            num_class = mats.num_class
    data = trial_data(conf, spec.task, spec.metric.primary, num_class, matrices,
                      nthread=max(1, int(math.floor(resources["cpu"]))))
    trainable = ray.tune.with_resources(ray.tune.with_parameters(trial, data=data), resources)
    began = time.perf_counter()
    board, paths, restored, completed = [], {}, False, [0]
    for family, samples in samples_per_family(conf).items():
        paths[family] = posixpath.join(storage, f"{name}-{family}")
        with scoped_env(CHECKPOINT_PERIOD_ENV, os.environ.get(CHECKPOINT_PERIOD_ENV) or
                        str(conf.get("experiment_checkpoint_s", 2))):
            grid, was_restored = _search_family(spec, conf, family, samples, trainable, storage,
                                                f"{name}-{family}", fresh, max_concurrent, completed)
        restored |= was_restored
        rows = _leaderboard(grid, conf)
        if not rows:
            errors = "; ".join(str(e) for e in grid.errors)[:2000]
            raise LakerayError(f"tuning {name}: no {family} trial finished ({grid.num_errors} error(s)): {errors}")
        degenerate = [r for r in rows if r["degenerate"]]
        if degenerate:
            log.warning("%s: %d of %d trial(s) predict a constant on validation (ranked last): %s", family,
                        len(degenerate), len(rows), "; ".join(str(r["params"]) for r in degenerate[:3]))
        capped = [r for r in rows if r["stopped"] == "round_cap" and r["round_cap"] > 1]   # not one-round forests
        if capped:
            log.warning("%s: %d trial(s) were still improving at the round cap (%d); raise tune.families.%s.rounds",
                        family, len(capped), capped[0]["round_cap"], family)
        board += rows
    if all(r["degenerate"] for r in board):
        raise LakerayError(f"tuning {name}: every trial predicts a constant on the validation split; "
                           "the features carry no signal the models found, or the spaces are wrong")
    return TuneOutcome(paths, rank(board, spec.higher_is_better), restored, time.perf_counter() - began)


def trial_data(conf: dict, task: str, metric: str, num_class: int, matrices: dict, nthread: int) -> dict:
    """What each trial gets beside its config (trainable.trial): `matrices` maps matrix_key(family
    conf) to (x_train, y_train, x_valid, y_valid, feature_types); the token names them for the
    DMatrices a reused actor keeps from trial to trial."""
    return {"families": conf["families"], "task": task, "metric": metric, "num_class": num_class,
            "report_every": int(conf["report_every"]), "early_stopping_rounds": int(conf["early_stopping_rounds"]),
            "rounds_scale": conf["rounds_scale"], "nthread": nthread, "matrices": matrices,
            "token": uuid.uuid4().hex}


def _optuna_logs_to_root() -> None:
    """Optuna's study lines ("A new study created in memory") through lakeray's handlers (the log
    file; the terminal from WARNING up) instead of its own stderr handler."""
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()


def _restore_state_patterns() -> tuple[str, tuple[str, ...]]:
    """Ray's own names for what Tuner.restore loads: the experiment state (JSON), the tuner's pickle
    and the pickles of the searcher, its generator wrapper, the variant generator and the callbacks
    (cloudpickle, even where the name ends in .json). Each kind loads its greatest name."""
    from ray.tune.callback import CallbackList
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.impl.tuner_internal import _TUNER_PKL
    from ray.tune.search.basic_variant import BasicVariantGenerator
    from ray.tune.search.search_generator import SearchGenerator
    from ray.tune.search.searcher import Searcher

    pickles = tuple(cls.CKPT_FILE_TMPL.format("*") for cls in (Searcher, SearchGenerator, BasicVariantGenerator, CallbackList))
    return TuneController.CKPT_FILE_TMPL.format("*"), (*pickles, _TUNER_PKL)


def saved_state_readable(path: str) -> bool:
    """Whether the newest experiment state in `path` parses and the newest file of each state pickle
    Tuner.restore loads unpickles. Ray copies these files to the storage path with plain writes, from
    a background thread, so a driver killed mid-copy can leave one empty or cut short (seen: a 0-byte
    experiment_state-*.json; a searcher-state-*.pkl and a search_gen_state-*.json that raised EOFError
    in the restore, after which Ray restarted the family with none of its trials)."""
    import pyarrow.fs
    import ray.cloudpickle

    state_pattern, pickle_patterns = _restore_state_patterns()
    fs, root = arrow_filesystem(path)
    names = sorted(i.base_name for i in fs.get_file_info(pyarrow.fs.FileSelector(root))
                   if i.type == pyarrow.fs.FileType.File)

    def newest(pattern: str) -> str | None:
        matching = fnmatch.filter(names, pattern)
        return posixpath.join(root, matching[-1]) if matching else None

    try:
        if state := newest(state_pattern):
            with fs.open_input_stream(state) as stream:
                json.loads(stream.read())
        for pattern in pickle_patterns:
            if pickled := newest(pattern):
                with fs.open_input_stream(pickled) as stream:
                    ray.cloudpickle.loads(stream.read())
    except Exception as e:   # noqa: BLE001 -- any way a torn file fails to load means the same: search afresh
        log.debug("unreadable saved search state in %s: %r", path, e)
        return False
    return True


def _search_family(spec, conf, family, samples, trainable, storage, name, fresh, max_concurrent, completed):
    """One family's Tune experiment, restored if an earlier run of the same search left one."""
    import ray.tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from lakeray.tune.progress import TrialProgress

    _optuna_logs_to_root()

    path = posixpath.join(storage, name)
    if fresh and os.path.isdir(path):
        shutil.rmtree(path)
    if not fresh and ray.tune.Tuner.can_restore(path) and not saved_state_readable(path):
        log.warning("the saved state of the search %s is unreadable (its driver was killed while Ray copied it): "
                    "searching %s afresh", path, family)
        fs, root = arrow_filesystem(path)
        fs.delete_dir(root)
    if not fresh and ray.tune.Tuner.can_restore(path):
        log.info("restoring the interrupted or finished search %s (finished trials are kept)", path)
        tuner = ray.tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True)
        return tuner.fit(), True
    fam = conf["families"][family]
    rounds = round_cap(fam, conf["rounds_scale"])
    max_t = math.ceil(rounds / conf["report_every"]) + 1        # + the final report at the best round
    mode = "max" if spec.higher_is_better else "min"
    patience = fam.get("early_stopping_rounds") or conf["early_stopping_rounds"]
    log.info("searching %s: %d trial(s), %s", family, samples,
             f"up to {rounds} rounds each (early stopping after {patience} without improvement)" if rounds > 1
             else "one round each")
    tuner = ray.tune.Tuner(
        trainable,
        tune_config=ray.tune.TuneConfig(
            **TUNE_CONFIG, num_samples=samples, max_concurrent_trials=max_concurrent or int(conf["max_concurrent_trials"]),
            search_alg=OptunaSearch(space=DefineByRun(family, fam.get("space") or {}), metric="score", mode=mode,
                                    seed=int(conf["seed"])),
            scheduler=ASHAScheduler(time_attr="training_iteration", metric="score", mode=mode,
                                    max_t=max_t, grace_period=min(max_t, int(conf["scheduler"]["grace_period"])),
                                    reduction_factor=float(conf["scheduler"]["reduction_factor"]))),
        run_config=ray.tune.RunConfig(storage_path=storage, name=name,
                                      callbacks=[_crash_callback(completed),
                                                 TrialProgress(family, samples, spec.metric.primary, mode == "max")],
                                      failure_config=ray.tune.FailureConfig(max_failures=1), verbose=0),
    )
    return tuner.fit(), False


def format_leaderboard(board: list[dict], metric: str, top: int = 10) -> str:
    lines = [f"{'#':>2} {'family':<14} {metric:>10} {'rounds':>6} {'sec':>6}  params"]
    for i, row in enumerate(board[:top], 1):
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(row["params"].items()))
        flag = " (degenerate: constant predictions)" if row.get("degenerate") else \
            {"scheduler": " (stopped by ASHA)", "early_stopping": " (early stopping)",
             "round_cap": " (hit the round cap)"}.get(row.get("stopped"), " (early-stopped)" if row["stopped_early"] else "")
        lines.append(f"{i:>2} {row['family']:<14} {row['score']:>10.4f} {row['rounds']:>6} {row['seconds']:>6.1f}  {params}{flag}")
    return "\n".join(lines)
