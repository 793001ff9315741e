"""The `lakeray` command line. jobs/*.py are thin spark-submit entry points onto the same code.

Every command takes the pipeline spec the same way, positionally or as --pipeline SPEC, and every
command takes --env, --log-level, --verbose and --conf KEY=VALUE.

  lakeray validate  SPEC...                         check specs (all problems at once)
  lakeray generate  SPEC [--rows N]                 write the bundled data into the landing area
  lakeray ingest    SPEC [--smoke-test]             silos -> bronze Delta
  lakeray prepare   SPEC [--smoke-test] [--full-refresh]  bronze -> silver -> gold Delta (incremental)
  lakeray tune      SPEC [--gold-version N|latest]  Ray Tune model selection -> MLflow leaderboard
  lakeray train     SPEC [--tune-run-id ID]         the best configuration on Ray (Train or one task)
  lakeray evaluate  SPEC [--train-run-id ID]        test metrics, fairness, report, promotion gate
  lakeray drift     SPEC [--window 1d]              served traffic vs the champion's training profile
  lakeray serve     SPEC                            the champion on Ray Serve (blocks; Ctrl-C stops)
  lakeray run       SPEC [--smoke-test]             the whole lifecycle once, ingest -> champion
  lakeray demo      [SPEC...]                       the bundled pipelines end to end, then churn's
                                                    closed loop (serve, shift, drift, retrain, hot swap)
  lakeray reset     SPEC [--stage ingest|prepare|all] [--source S] [--dry-run]
                                                    remove a stage's tables and checkpoints to start it over
  lakeray spark-args                                --jars/--packages for spark-submit

SPEC is a path such as pipelines/churn.yaml.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

from lakeray.config import Settings, load_settings
from lakeray.errors import ConfigError, LakerayError

log = logging.getLogger("lakeray")


def _not_a_py4j_retry(record: logging.LogRecord) -> bool:
    """py4j logs a retried send on a pooled connection the JVM had closed (it then succeeds) at
    INFO on the root logger, with a traceback; a send that really fails is logged at ERROR."""
    return not (record.levelno == logging.INFO and record.name == "root"
                and record.getMessage() == "Exception while sending command.")


def setup_logging(level: str = "INFO", verbose: bool = False) -> None:
    from lakeray.console import setup_console

    setup_console(level, verbose, extra_filters=(_not_a_py4j_retry,))


def log_level(value: str) -> str:
    """--log-level: a logging level name, any case (argparse reports anything else, exit 2)."""
    if not isinstance(logging.getLevelName(value.upper()), int):
        raise argparse.ArgumentTypeError(f"{value!r} is not a log level (DEBUG, INFO, WARNING, ERROR, CRITICAL)")
    return value.upper()


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive whole number")
    return number


def _common(parser: argparse.ArgumentParser, pipeline: bool = True) -> None:
    """--env/--log-level/--verbose/--conf for every command; with `pipeline`, the spec either way:
    `lakeray X pipelines/churn.yaml` or `lakeray X --pipeline pipelines/churn.yaml`."""
    if pipeline:
        parser.add_argument("spec", nargs="?", default=None, help="pipeline spec, e.g. pipelines/churn.yaml")
        parser.add_argument("--pipeline", default=None, help="the same, as an option")
    parser.add_argument("--env", default=None, help="conf overlay: conf/<env>/ (default $LAKERAY_ENV or 'local')")
    parser.add_argument("--log-level", default="INFO", type=log_level)
    parser.add_argument("--verbose", action="store_true",
                        help="the engines' own output on the terminal too (Spark, Ray, Tune, MLflow); "
                             "it is always in the run's log file")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. --conf tune.num_samples=8 (value parsed as YAML; repeatable)")


def conf_overrides(pairs: list[str]) -> dict:
    """--conf a.b=1 --conf a.c=x -> {"a": {"b": 1, "c": "x"}}."""
    import yaml

    from lakeray.yamlio import load_yaml

    out: dict = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key or any(not part.strip() for part in key.split(".")):
            raise ConfigError(f"--conf {pair!r}: expected KEY=VALUE with a dotted key, e.g. tune.num_samples=8")
        try:
            value = load_yaml(raw) if raw else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--conf {pair!r}: the value is not valid YAML ({exc.problem or exc}); "
                              "quote it, e.g. --conf 'KEY=\"text\"'") from None
        node = out
        *parents, leaf = key.split(".")
        for depth, part in enumerate(parents):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--conf {pair!r}: {'.'.join(parents[:depth + 1])} was set to a value by an "
                                  "earlier --conf, so it has no keys")
        if isinstance(node.get(leaf), dict) and not isinstance(value, dict):
            raise ConfigError(f"--conf {pair!r}: an earlier --conf set keys under {key}")
        node[leaf] = value
    return out


def _load(args, paths: dict | None = None) -> Settings:
    overrides = conf_overrides(getattr(args, "conf", []))
    if getattr(args, "verbose", False):
        overrides.setdefault("ray", {}).setdefault("log_to_driver", True)
    if paths:
        overrides.setdefault("paths", {}).update(paths)
    return load_settings(args.env, overrides=overrides, overrides_source="--conf")


def _job(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--smoke-test", action="store_true",
                        help="run on a small copy of the bundled data in a scratch folder")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse, then put the spec(s), given positionally or with --pipeline, in args.pipeline (one
    spec) or args.specs (validate, demo: several)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("validate", "demo"):
        args.specs = [*args.specs, *args.pipeline]
        if args.command == "validate" and not args.specs:
            parser.error("validate: give at least one pipeline spec, e.g. lakeray validate pipelines/churn.yaml")
        args.pipeline = args.specs[0] if len(args.specs) == 1 else None
    elif hasattr(args, "spec"):
        if args.spec and args.pipeline and args.spec != args.pipeline:
            parser.error(f"{args.command}: two specs given ({args.spec} and --pipeline {args.pipeline}); give one")
        args.pipeline = args.pipeline or args.spec
        if not args.pipeline:
            parser.error(f"{args.command}: give the pipeline spec, e.g. lakeray {args.command} pipelines/churn.yaml "
                         "(or --pipeline pipelines/churn.yaml)")
    return args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakeray", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="validate pipeline specs")
    p.add_argument("specs", nargs="*", help="pipeline specs")
    _common(p, pipeline=False)
    p.add_argument("--pipeline", action="append", default=[], help="a spec, as an option (repeatable)")
    p.set_defaults(log_level="WARNING")
    p = sub.add_parser("generate", help="write the bundled data of a pipeline into its landing area")
    _common(p)
    p.add_argument("--rows", type=positive_int, default=None, help="entities to generate (default: demo size)")
    p.add_argument("--seed", type=int, default=42)
    p = sub.add_parser("ingest", help="silos -> bronze Delta tables")
    _job(p)
    p.add_argument("--sources", default=None, help="comma-separated subset of the spec's sources")
    p = sub.add_parser("prepare", help="bronze -> silver -> gold Delta tables")
    _job(p)
    p.add_argument("--full-refresh", action="store_true",
                   help="recompute silver, gold and the quarantine from all of bronze (default: incremental "
                        "after a run that finished ok)")
    p = sub.add_parser("tune", help="model selection with Ray Tune on a pinned gold version")
    _job(p)
    p.add_argument("--gold-version", default=None, help="gold Delta version to read, or 'latest' to pin the newest now")
    p.add_argument("--fresh", action="store_true", help="start a new search instead of restoring an unfinished one")
    p = sub.add_parser("train", help="train the tune run's best configuration on Ray Train")
    _job(p)
    p.add_argument("--tune-run-id", default=None, help="MLflow tune run (default: the newest finished one)")
    p = sub.add_parser("evaluate", help="evaluate the newest trained model and gate its promotion to champion")
    _job(p)
    p.add_argument("--train-run-id", default=None, help="MLflow train run (default: the newest finished one)")
    p = sub.add_parser("drift", help="drift of the inference log's window against the champion's baseline profile")
    _common(p)
    p.add_argument("--window", default="1d", help="how far back from now: 30m, 6h, 1d, 2w")
    p = sub.add_parser("run", help="the whole lifecycle once: ingest -> prepare -> tune -> train -> evaluate")
    _common(p)
    p.add_argument("--smoke-test", action="store_true",
                   help="the smoke search and training sizes (tune.smoke, train.smoke) on the spec's own data")
    p = sub.add_parser("serve", help="serve the champion model with Ray Serve (blocks until interrupted)")
    _common(p)
    p = sub.add_parser("demo", help="run the bundled pipelines end to end on their default data")
    p.add_argument("specs", nargs="*", help="pipeline specs (default: the bundled examples, churn and telco)")
    _common(p, pipeline=False)
    p.add_argument("--no-loop", action="store_true", help="stop at the champions (skip churn's serve/drift/retrain loop)")
    p.add_argument("--pipeline", action="append", default=[], help="a spec, as an option (repeatable)")
    p.add_argument("--smoke-test", action="store_true", help="small data")
    p = sub.add_parser("reset", help="remove a stage's Delta tables and streaming checkpoints so it starts over")
    _common(p)
    p.add_argument("--stage", choices=("ingest", "prepare", "all"), default="all",
                   help="ingest: bronze + checkpoints; prepare: silver, gold, quarantine; all: both (default)")
    p.add_argument("--source", action="append", default=[], help="only these sources (repeatable or comma-separated)")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    p = sub.add_parser("spark-args", help="print the spark-submit arguments that add lakeray's JVM jars")
    _common(p, pipeline=False)
    return parser


@contextlib.contextmanager
def _scratch_settings(args) -> Settings:
    """Settings for the run: the configured paths, or a scratch folder for --smoke-test."""
    from lakeray.lifecycle import SCRATCH_PATHS

    if not getattr(args, "smoke_test", False):
        yield _load(args)
        return
    scratch = Path(tempfile.mkdtemp(prefix="lakeray-smoke-"))
    try:
        yield _load(args, {k: str(scratch / k) for k in SCRATCH_PATHS})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def cmd_validate(args) -> int:
    from lakeray.spec import load_spec

    for path in args.specs:
        spec = load_spec(path)
        sys.stdout.write(f"{path}: ok ({spec.name}, {spec.task}, {len(spec.sources)} sources, {len(spec.features)} features)\n")
    return 0


def cmd_generate(args) -> int:
    from lakeray.lakehouse import Lakehouse
    from lakeray.spec import load_spec
    from lakeray_examples.datagen.bundles import bundled_data

    spec = load_spec(args.pipeline)
    if any(s.format == "jdbc" for s in spec.sources.values()):
        raise LakerayError(f"{args.pipeline} has database silos: use `lakeray demo` or a job's --smoke-test, "
                           "which start and seed a local PostgreSQL for the run")
    lake = Lakehouse.for_pipeline(_load(args), spec)
    with bundled_data(spec, lake, rows=args.rows, seed=args.seed) as info:
        log.info("bundled data for %s in %s: %s", spec.name, lake.landing_root, info)
    return 0


def _run_stage(args, stage: str) -> int:
    """One stage; with --smoke-test, every stage up to it on small bundled data in a scratch folder."""
    from lakeray.lakehouse import Lakehouse
    from lakeray.lifecycle import run_data_stages, run_ml_stages, stages_through
    from lakeray.spec import load_spec

    spec = load_spec(args.pipeline)
    stages = stages_through(stage) if args.smoke_test else (stage,)
    with _scratch_settings(args) as settings, contextlib.ExitStack() as stack:
        data = {}
        if {"ingest", "prepare"} & set(stages):
            from lakeray.spark import build_spark

            if args.smoke_test:
                from lakeray_examples.datagen.bundles import bundled_data

                stack.enter_context(bundled_data(spec, Lakehouse.for_pipeline(settings, spec), size="smoke"))
            spark = build_spark(settings, app_name=f"lakeray-{stage}-{spec.name}")
            sources = args.sources.split(",") if getattr(args, "sources", None) else None
            data = run_data_stages(spark, spec, settings, stages, sources=sources,
                                   full_refresh=getattr(args, "full_refresh", False))
            spark.stop()   # the JVM is not needed by the Ray stages
        ml = [s for s in stages if s in ("tune", "train", "evaluate")]
        if ml:
            gold = data["prepare"].gold.version if "prepare" in data else getattr(args, "gold_version", None)
            out = run_ml_stages(spec, settings, ml, gold_version=gold, smoke=args.smoke_test,
                                fresh_tune=getattr(args, "fresh", False), tune_run_id=getattr(args, "tune_run_id", None),
                                train_run_id=getattr(args, "train_run_id", None))
        _summarise(spec, stage, data, out if ml else {})
    return 0


def _summarise(spec, stage: str, data: dict, ml: dict) -> None:
    from lakeray.console import summary
    from lakeray.summary import data_rows, ml_rows, verdict_row
    from lakeray.tune.search import format_leaderboard

    if "tune" in ml:
        sys.stdout.write(f"leaderboard ({spec.name}, {spec.metric.primary} on validation):\n"
                         f"{format_leaderboard(ml['tune']['outcome'].leaderboard, spec.metric.primary)}\n")
    rows = data_rows(data) + ml_rows(spec, ml)
    if "evaluate" in ml:
        rows.append(verdict_row(ml["evaluate"]["promoted_version"], []))
    sys.stdout.write(summary(f"lakeray {stage} {spec.name}", rows))


def cmd_drift(args) -> int:
    from lakeray.console import summary
    from lakeray.lifecycle import retrain_after_drift
    from lakeray.monitor.job import run_drift_job
    from lakeray.spark import build_spark
    from lakeray.spec import load_spec
    from lakeray.summary import drift_rows, verdict_row

    spec = load_spec(args.pipeline)
    settings = _load(args)
    spark = build_spark(settings, app_name=f"lakeray-drift-{spec.name}")
    outcome = run_drift_job(spark, spec, settings, window=args.window)
    rows = drift_rows(outcome)
    retrained = retrain_after_drift(spark, spec, settings, outcome)    # this command's decision, not the job's
    if retrained is not None:
        rows += [("retrained", f"gold v{retrained['gold_version']}"),
                 verdict_row(retrained["promoted_version"], retrained["failed_checks"], retrained.get("champion_version"))]
    sys.stdout.write(summary(f"lakeray drift {spec.name}", rows))
    return 0


def cmd_run(args) -> int:
    from lakeray.console import summary
    from lakeray.lifecycle import run_lifecycle
    from lakeray.spark import build_spark
    from lakeray.spec import load_spec
    from lakeray.summary import data_rows, ml_rows, verdict_row

    spec = load_spec(args.pipeline)
    settings = _load(args)
    out = run_lifecycle(build_spark(settings, app_name=f"lakeray-run-{spec.name}"), spec, settings,
                        smoke=args.smoke_test)
    rows = data_rows(out["data"]) + ml_rows(spec, out["ml"]) + [verdict_row(out["promoted_version"], out["failed_checks"],
                                                                      out.get("champion_version"))]
    sys.stdout.write(summary(f"lakeray run {spec.name}", rows))
    return 3 if out["failed_checks"] else 0


def cmd_serve(args) -> int:
    import signal

    from ray import serve

    from lakeray.raysession import ray_session
    from lakeray.serve.app import deploy

    settings = _load(args)
    with ray_session(settings):
        # after ray.init, which installs its own SIGTERM handler (and Ray's core worker a stack
        # dumper): `kill` and Ctrl-C both raise KeyboardInterrupt here and stop Serve cleanly
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.default_int_handler)
        try:
            url = deploy(args.pipeline, settings)
            log.info("serving %s at %s (POST /predict, /predict/batch; GET /healthz, /docs); Ctrl-C or SIGTERM stops", args.pipeline, url)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            log.info("stopping: shutting Serve down")
            serve.shutdown()
    return 0


def cmd_demo(args) -> int:
    from lakeray.console import summary
    from lakeray_examples import DEFAULT_PIPELINES
    from lakeray_examples.demo import run_demo

    results = run_demo(args.specs or DEFAULT_PIPELINES, settings=_load(args), smoke=args.smoke_test,
                       loop=not args.no_loop)
    sys.stdout.write(summary("lakeray demo", demo_rows(results)))
    return 0


def demo_rows(results: dict) -> list[tuple[str, str]]:
    """A line per pipeline (gold version, champion, test metric, report) and one for churn's loop."""
    rows = []
    for name, out in results.items():
        gold = out["prepare"].gold
        evaluated = out.get("evaluate")
        line = f"gold v{gold.version}"
        if evaluated:
            line += f"; champion version {evaluated['promoted_version']}; report {evaluated['report']}"
        rows.append((name, line))
        loop = out.get("loop")
        if loop:
            rows.append((f"{name} loop", f"drift on {', '.join(loop['drifted'])} -> retrained, champion version "
                                         f"{loop['promoted']}, hot swap {loop.get('swap_s', 0):.1f} s"
                         if loop.get("promoted") else f"drift on {', '.join(loop['drifted'])}; not promoted"))
    return rows


def cmd_reset(args) -> int:
    from lakeray.lakehouse.reset import run_reset
    from lakeray.spec import load_spec

    sources = [s.strip() for arg in args.source for s in arg.split(",") if s.strip()] or None
    for line in run_reset(_load(args), load_spec(args.pipeline), args.stage, sources, dry_run=args.dry_run):
        sys.stdout.write(line + "\n")
    return 0


def cmd_spark_args(args) -> int:
    from lakeray.spark import spark_submit_args

    sys.stdout.write(" ".join(spark_submit_args(_load(args))) + "\n")
    return 0


COMMANDS = {
    "validate": cmd_validate, "generate": cmd_generate, "ingest": lambda a: _run_stage(a, "ingest"),
    "prepare": lambda a: _run_stage(a, "prepare"), "tune": lambda a: _run_stage(a, "tune"),
    "train": lambda a: _run_stage(a, "train"), "evaluate": lambda a: _run_stage(a, "evaluate"),
    "drift": cmd_drift, "serve": cmd_serve, "run": cmd_run, "demo": cmd_demo, "spark-args": cmd_spark_args,
    "reset": cmd_reset,
}


NO_RUN_LOG = ("validate", "spark-args")


def _pipeline_name(args) -> str | None:
    path = getattr(args, "pipeline", None)
    return Path(path).stem if path else None


def main(argv: list[str] | None = None) -> int:
    from lakeray.console import open_run_log, reset_console

    args = parse_args(argv)
    setup_logging(args.log_level, getattr(args, "verbose", False))
    run_log = None
    try:
        if args.command not in NO_RUN_LOG:
            run_log = open_run_log(_load(args).path("logs"), args.command, _pipeline_name(args), args.log_level)
            log.info("lakeray %s: full log in %s", args.command, run_log)
        return COMMANDS[args.command](args)
    except LakerayError as exc:
        log.error("%s", exc)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    finally:
        if run_log is not None:
            log.info("full log: %s", run_log)
        reset_console()       # the handlers this call added: an in-process caller keeps its own logging


if __name__ == "__main__":
    sys.exit(main())
