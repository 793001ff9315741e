"""A live bar per searched family on a terminal (trials done of the budget, best score so far),
one plain line per family where stderr is not a terminal (CI, log files).

Tune pickles its callbacks with the experiment state: the bar (and the stream it writes to) is
made on first use and left out of the pickle."""

from __future__ import annotations

import logging
import time

import ray.tune

from lakeray.console import progress

log = logging.getLogger("lakeray.tune.search")


class TrialProgress(ray.tune.Callback):
    """Counts one family's finished trials (completed or failed) against its budget."""

    def __init__(self, family: str, total: int, metric: str, higher_is_better: bool):
        self.family, self.total, self.metric, self.higher = family, total, metric, higher_is_better
        self.done, self.best, self.started, self._bar = 0, None, time.perf_counter(), None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_bar": None}

    def _progress_bar(self):
        if self._bar is None:
            self._bar = progress(self.total, f"tune {self.family}", "trial", initial=self.done)
        return self._bar

    def _finished(self, trial) -> None:
        self.done += 1
        score = (trial.last_result or {}).get("score")
        if score is not None and (self.best is None or (score > self.best) == self.higher):
            self.best = score
        bar = self._progress_bar()
        bar.update(1)
        if self.best is not None:
            bar.set_postfix_str(f"best {self.metric} {self.best:.4f}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finished(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finished(trial)

    def on_experiment_end(self, trials, **info):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        best = "none" if self.best is None else f"{self.best:.4f}"
        log.info("searched  %s: %d of %d trial(s) in %.0f s, best %s %s", self.family, self.done, self.total,
                 time.perf_counter() - self.started, self.metric, best)
