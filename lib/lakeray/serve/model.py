"""The champion model for serving: downloaded from the registry and verified against the
checksum recorded at registration, with its fitted preprocessing."""

from __future__ import annotations

import dataclasses
import tempfile

from lakeray.errors import LakerayError
from lakeray.models.bundle import ModelBundle
from lakeray.registry.loading import load_registered
from lakeray.registry.tracking import configure_tracking


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
