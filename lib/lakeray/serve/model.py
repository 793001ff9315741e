"""The champion model for serving: downloaded from the registry and verified against the
checksum recorded at registration, with its fitted preprocessing."""

from __future__ import annotations

import dataclasses
import logging
import tempfile

from lakeray.errors import LakerayError
from lakeray.models.bundle import ModelBundle, load_bundle
from lakeray.registry.gate import current_champion
from lakeray.registry.tracking import configure_tracking

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ServedModel:
    bundle: ModelBundle
    version: str
    train_run_id: str


def load_champion(settings, pipeline: str) -> ServedModel:
    tracking = configure_tracking(settings, pipeline)
    version = current_champion(tracking.client, tracking.model_name)
    if version is None:
        raise LakerayError(f"no '{tracking.model_name}@champion' in MLflow ({tracking.tracking_uri}): "
                           "run tune, train and evaluate first")
    folder = tempfile.mkdtemp(prefix="lakeray-serve-")
    path = tracking.download(f"models:/{tracking.model_name}@champion", folder)
    bundle = load_bundle(path, expected_model_sha256=version.tags.get("model_sha256"))
    log.info("serving %s version %s (train run %s, sha256 %s)", tracking.model_name, version.version, version.run_id,
             bundle.manifest["sha256"]["model.ubj"])
    return ServedModel(bundle, str(version.version), version.run_id)
