"""The champion model for serving: downloaded from the registry and verified against the
checksum recorded at registration, with its fitted preprocessing."""

from __future__ import annotations

import dataclasses
import logging
import tempfile

from lakeray.errors import LakerayError
from lakeray.models.bundle import ModelBundle
from lakeray.registry.loading import load_registered
from lakeray.registry.tracking import configure_tracking

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ServedModel:
    bundle: ModelBundle
    version: str
    train_run_id: str


def load_alias(settings, pipeline: str, alias: str = "champion") -> ServedModel | None:
    """The registered version holding `alias` (verified bundle), or None if no version holds it."""
    loaded = load_registered(configure_tracking(settings, pipeline), alias, tempfile.mkdtemp(prefix=f"lakeray-serve-{alias}-"))
    if loaded is None:
        return None
    version, bundle = loaded
    return ServedModel(bundle, str(version.version), version.run_id)


def load_champion(settings, pipeline: str) -> ServedModel:
    model = load_alias(settings, pipeline, "champion")
    if model is None:
        raise LakerayError(f"no 'champion' alias for pipeline {pipeline} in MLflow: run tune, train and evaluate first")
    return model


class RegistryLoader:
    """Where the deployment gets its models (the default): MLflow's registry, by alias.

    A loader is passed into the Serve deployment (as Ray's own e2e example does "to make it easier
    to mock during testing"): `load(alias)` -> a verified ServedModel or None, and `version(alias)`
    -> the version holding the alias now (cheap; the hot-swap watcher polls it), or None."""

    def __init__(self, settings, pipeline: str):
        self.settings, self.pipeline, self._tracking = settings, pipeline, None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tracking": None}     # a replica opens its own MLflow client

    def load(self, alias: str) -> ServedModel | None:
        return load_alias(self.settings, self.pipeline, alias)

    def version(self, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        if self._tracking is None:
            self._tracking = configure_tracking(self.settings, self.pipeline)
        tracking = self._tracking
        try:
            return str(tracking.client.get_model_version_by_alias(tracking.model_name, alias).version)
        except MlflowException:
            return None


class BundleLoader:
    """A model bundle folder served as the champion (no registry): tests, or a model shipped with
    the image. The bundle's checksums are verified when it is loaded; other aliases hold nothing."""

    def __init__(self, bundle_dir, version: str = "bundle", train_run_id: str = "none"):
        self.bundle_dir, self._version, self.train_run_id = str(bundle_dir), str(version), train_run_id

    def load(self, alias: str) -> ServedModel | None:
        from lakeray.models.bundle import load_bundle

        if alias != "champion":
            return None
        return ServedModel(load_bundle(self.bundle_dir), self._version, self.train_run_id)

    def version(self, alias: str) -> str | None:
        return self._version if alias == "champion" else None


@dataclasses.dataclass
class Scored:
    scores: list                 # one entry per row; None where the row failed
    errors: dict[int, str]       # row index -> why the model could not score it
    model_broken: bool = False   # the model fails even on a row of nulls: not the rows' fault


def score_isolated(predict, rows: list[dict]) -> Scored:
    """Scores for `rows` from `predict` (row dicts -> scores, e.g. a bundle's predict_rows) in one
    vectorised call; if that call raises (or gives a non-finite score), the rows are bisected until
    each failing row is found alone, so one bad row fails only itself, never the other rows (or
    other clients' requests) scored with it."""
    import numpy as np

    scores: list = [None] * len(rows)
    errors: dict[int, str] = {}

    def run(lo: int, hi: int) -> None:
        try:
            out = np.asarray(predict(rows[lo:hi]))
            if len(out) != hi - lo:
                raise LakerayError(f"the model returned {len(out)} score(s) for {hi - lo} row(s)")
        except Exception as exc:
            if hi - lo == 1:
                errors[lo] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:500]
                return
            mid = (lo + hi) // 2
            run(lo, mid)
            run(mid, hi)
            return
        for i, score in enumerate(out, start=lo):
            if np.all(np.isfinite(score)):
                scores[i] = score
            else:
                errors[i] = f"the model returned a non-finite score ({score})"

    if rows:
        run(0, len(rows))
    broken = False
    if errors:
        try:
            broken = not np.all(np.isfinite(predict([{}])))
        except Exception:
            broken = True
        log.error("model could not score %d of %d row(s)%s; first: row %d: %s", len(errors), len(rows),
                  " (it fails on a row of nulls too: the model, not the rows)" if broken else "",
                  min(errors), errors[min(errors)])
    return Scored(scores, errors, broken)
