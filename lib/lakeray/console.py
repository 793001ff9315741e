"""What a lakeray command shows, and the full log beside it.

The terminal gets lakeray's own story: one line per step from the loggers in STORY, and warnings
and errors from anything. The run's log file (`paths.logs`/<command>-<pipeline>-<time>.log) gets
every record at the chosen level, engines included. Ray Tune's reporter, Ray Data's progress bars,
MLflow's download bars and Optuna's study lines are off unless `--verbose`, which also sends
everything to the terminal and lets Ray forward its workers' output (`ray.log_to_driver`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import sys
from pathlib import Path

STORY = frozenset({
    "lakeray", "lakeray.spark.session", "lakeray.lifecycle", "lakeray.tune.search", "lakeray.tune.job", "lakeray.train.job",
    "lakeray.evaluate.job", "lakeray.monitor.job", "lakeray_examples.demo", "lakeray_examples.demoloop",
})
# Engine progress output, off by default (each the engine's own switch; read when the engine runs).
QUIET_ENGINES = {
    "RAY_AIR_NEW_OUTPUT": "0",                      # Tune's classic reporter, silent at verbose=0 (the new one
                                                    # prints a table per experiment at any verbosity)
    "RAY_DATA_DISABLE_PROGRESS_BARS": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
TERMINAL_FORMAT = "%(asctime)s %(message)s"
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_ROLE = "_lakeray_handler"


class StoryFilter(logging.Filter):
    """lakeray's step lines at any level, everything else from WARNING up (with its level and source)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name in STORY or record.levelno >= logging.WARNING


class TerminalFormatter(logging.Formatter):
    def __init__(self):
        super().__init__(TERMINAL_FORMAT, datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if record.levelno >= logging.WARNING:
            head = f"{self.formatTime(record, self.datefmt)} "
            line = f"{head}{record.levelname} {record.name}: {line[len(head):]}"
        return line


def _replace_handler(role: str, handler: logging.Handler | None) -> None:
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _ROLE, None) == role]:
        root.removeHandler(old)
        old.close()
    if handler is not None:
        setattr(handler, _ROLE, role)
        root.addHandler(handler)


def setup_console(level: str = "INFO", verbose: bool = False, extra_filters=()) -> None:
    """The terminal handler (stderr) on the root logger, replacing one an earlier call added."""
    logging.getLogger().setLevel(getattr(logging, level.upper()))
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setFormatter(TerminalFormatter() if not verbose else logging.Formatter(FILE_FORMAT))
    if not verbose:
        terminal.addFilter(StoryFilter())
        for name, value in QUIET_ENGINES.items():
            os.environ.setdefault(name, value)
    for f in extra_filters:
        terminal.addFilter(f)
    _replace_handler("terminal", terminal)
    for noisy in ("py4j", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_file_path(folder: str | Path, command: str, pipeline: str | None, now: dt.datetime | None = None) -> Path:
    """<folder>/<command>[-<pipeline>]-<UTC time>.log, the pipeline name reduced to [A-Za-z0-9_.-]."""
    now = now or dt.datetime.now(dt.timezone.utc)
    name = "-".join(p for p in (command, re.sub(r"[^A-Za-z0-9_.-]+", "_", pipeline or "")) if p)
    return Path(folder) / f"{name}-{now:%Y%m%dT%H%M%S%f}Z.log"


def open_run_log(folder: str | Path, command: str, pipeline: str | None, level: str = "INFO") -> Path:
    """Every record from here on, at `level`, into a new file under `folder`; returns its path."""
    from lakeray.errors import ConfigError
    from lakeray.lakehouse.fs import is_uri

    if is_uri(str(folder)):
        raise ConfigError(f"paths.logs is {folder}: each command writes its log itself, so it must be a local "
                          "folder (set LAKERAY_LOGS)")
    path = log_file_path(folder, command, pipeline)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"paths.logs: cannot write the run's log in {folder} ({exc.strerror or exc}); "
                          "set LAKERAY_LOGS to a writable folder") from None
    handler.setLevel(getattr(logging, level.upper()))
    handler.setFormatter(logging.Formatter(FILE_FORMAT))
    _replace_handler("file", handler)
    return path


def reset_console() -> None:
    """Remove both handlers this module added (a process that ran a command in-process, e.g. a test)."""
    _replace_handler("file", None)
    _replace_handler("terminal", None)


def route_to_root(*names: str) -> None:
    """Loggers an engine gave handlers of its own (Ray's "ray", Optuna's "optuna") go through ours
    instead: to the log file, and to the terminal only from WARNING up."""
    for name in names:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True


def progress(total: int, desc: str, unit: str = "step", initial: int = 0):
    """A live tqdm bar on stderr where stderr is a terminal; a bar that draws nothing elsewhere (CI,
    a log file: the step lines tell the story there). Use as a context manager; .update(n)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, initial=initial, file=sys.stderr, leave=False,
                dynamic_ncols=True, disable=not sys.stderr.isatty())


def summary(title: str, rows: list[tuple[str, str]]) -> str:
    """A two-column table under a title, for the end of a command."""
    width = max((len(k) for k, _ in rows), default=0)
    lines = [title, "-" * len(title)] + [f"{k.ljust(width)}  {v}" for k, v in rows]
    return "\n".join(lines) + "\n"
