"""The folder layout of one pipeline's lakehouse (path-based Delta tables, no metastore needed)."""

from __future__ import annotations

import dataclasses
import posixpath

from lakeray.config import Settings
from lakeray.spec.models import PipelineSpec


@dataclasses.dataclass(frozen=True)
class Lakehouse:
    pipeline: str
    landing_root: str      # <landing>/<pipeline>
    root: str              # <lakehouse>/<pipeline>
    checkpoint_root: str   # <checkpoints>/<pipeline>

    @classmethod
    def for_pipeline(cls, settings: Settings, spec: PipelineSpec) -> "Lakehouse":
        return cls(
            pipeline=spec.name,
            landing_root=posixpath.join(settings.path("landing"), spec.name),
            root=posixpath.join(settings.path("lakehouse"), spec.name),
            checkpoint_root=posixpath.join(settings.path("checkpoints"), spec.name),
        )

    def landing(self, relative: str) -> str:
        return posixpath.join(self.landing_root, relative)

    def bronze(self, source: str) -> str:
        return posixpath.join(self.root, "bronze", source)

    def silver(self, source: str) -> str:
        return posixpath.join(self.root, "silver", source)

    @property
    def gold(self) -> str:
        return posixpath.join(self.root, "gold", "features")

    @property
    def quarantine(self) -> str:
        return posixpath.join(self.root, "quarantine")

    @property
    def run_metrics(self) -> str:
        return posixpath.join(self.root, "meta", "run_metrics")

    def monitor(self, table: str) -> str:
        """Monitoring tables: baseline_profiles, inference_log, drift_metrics."""
        return posixpath.join(self.root, "monitor", table)

    def checkpoint(self, source: str) -> str:
        return posixpath.join(self.checkpoint_root, "ingest", source)
