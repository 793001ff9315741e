"""The folder layout of one pipeline's lakehouse (path-based Delta tables, no metastore needed)."""

from __future__ import annotations

import dataclasses
import posixpath

from lakeray.config import Settings
from lakeray.errors import SpecError
from lakeray.spec.models import PipelineSpec
from lakeray.spec.names import name_problem, relative_path_problem


def _refuse(pipeline: str, field: str, problem: str):
    """Checked again where paths are built: a spec that bypassed validation cannot escape its root."""
    raise SpecError(f"pipeline '{pipeline}'", [f"{field}: {problem}"])


@dataclasses.dataclass(frozen=True)
class Lakehouse:
    pipeline: str
    landing_root: str      # <landing>/<pipeline>
    root: str              # <lakehouse>/<pipeline>
    checkpoint_root: str   # <checkpoints>/<pipeline>

    @classmethod
    def for_pipeline(cls, settings: Settings, spec: PipelineSpec) -> "Lakehouse":
        problem = name_problem(spec.name, "pipeline name")
        if problem:
            _refuse(spec.name, "name", problem)
        return cls(
            pipeline=spec.name,
            landing_root=posixpath.join(settings.path("landing"), spec.name),
            root=posixpath.join(settings.path("lakehouse"), spec.name),
            checkpoint_root=posixpath.join(settings.path("checkpoints"), spec.name),
        )

    def _source(self, source: str) -> str:
        problem = name_problem(source)
        if problem:
            _refuse(self.pipeline, f"sources[{source!r}]", problem)
        return source

    def landing(self, relative: str, source: str | None = None) -> str:
        """The landing folder of a file source: `relative` (its spec `path`) below the landing root."""
        problem = relative_path_problem(relative)
        if problem:
            _refuse(self.pipeline, f"sources.{source}.path" if source else "path", problem)
        return posixpath.join(self.landing_root, relative.rstrip("/"))

    def bronze(self, source: str) -> str:
        return posixpath.join(self.root, "bronze", self._source(source))

    def silver(self, source: str) -> str:
        return posixpath.join(self.root, "silver", self._source(source))

    @property
    def gold(self) -> str:
        return posixpath.join(self.root, "gold", "features")

    @property
    def quarantine(self) -> str:
        return posixpath.join(self.root, "quarantine")

    @property
    def run_metrics(self) -> str:
        return posixpath.join(self.root, "meta", "run_metrics")

    @property
    def rejected_files(self) -> str:
        """Landed files set aside whole at ingestion (unreadable, wrong header or schema): which, why, when."""
        return posixpath.join(self.root, "meta", "rejected_files")

    def monitor(self, table: str) -> str:
        """Monitoring tables: baseline_profiles, inference_log (and inference_log_labels), profiles, drift_metrics,
        window_profiles."""
        return posixpath.join(self.root, "monitor", table)

    @property
    def profile_checkpoints(self) -> str:
        """The drift job's streaming checkpoints over the inference log (one per champion and plan)."""
        return posixpath.join(self.checkpoint_root, "monitor", "profiles")

    def checkpoint(self, source: str) -> str:
        return posixpath.join(self.checkpoint_root, "ingest", self._source(source))
