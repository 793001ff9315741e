"""The champion model for serving: downloaded from the registry and verified against the
checksum recorded at registration, with its fitted preprocessing."""

from __future__ import annotations

import dataclasses
import logging
import tempfile

from lakeray.errors import LakerayError
from lakeray.models.bundle import ModelBundle, load_bundle
from lakeray.registry.tracking import configure_tracking

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ServedModel:
    bundle: ModelBundle
    version: str
    train_run_id: str


def load_alias(settings, pipeline: str, alias: str = "champion") -> ServedModel | None:
    """The registered version holding `alias` (verified bundle), or None if no version holds it."""
    from mlflow.exceptions import MlflowException

    tracking = configure_tracking(settings, pipeline)
    try:
        version = tracking.client.get_model_version_by_alias(tracking.model_name, alias)
    except MlflowException:
        return None
    folder = tempfile.mkdtemp(prefix=f"lakeray-serve-{alias}-")
    path = tracking.download(f"models:/{tracking.model_name}@{alias}", folder)
    bundle = load_bundle(path, expected_model_sha256=version.tags.get("model_sha256"))
    log.info("loaded %s@%s = version %s (train run %s, sha256 %s)", tracking.model_name, alias, version.version,
             version.run_id, bundle.manifest["sha256"]["model.ubj"])
    return ServedModel(bundle, str(version.version), version.run_id)


def load_champion(settings, pipeline: str) -> ServedModel:
    model = load_alias(settings, pipeline, "champion")
    if model is None:
        raise LakerayError(f"no 'champion' alias for pipeline {pipeline} in MLflow: run tune, train and evaluate first")
    return model
