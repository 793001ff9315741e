"""A registered model version by alias, downloaded and verified: what evaluation compares with
and what serving serves. The version is resolved once and downloaded by number, so an alias
that moves meanwhile cannot pair one version's checksum with another's files."""

from __future__ import annotations

import logging
from pathlib import Path

from lakeray.models.bundle import ModelBundle, load_bundle

log = logging.getLogger(__name__)


def load_registered(tracking, alias: str, folder: str | Path) -> tuple[object, ModelBundle] | None:
    """(ModelVersion, verified bundle) for `alias` of the pipeline's registered model, or None if
    no version holds the alias. A bundle whose SHA-256 differs from the registered one is refused."""
    from mlflow.exceptions import MlflowException

    try:
        version = tracking.client.get_model_version_by_alias(tracking.model_name, alias)
    except MlflowException:
        return None
    path = tracking.download(f"models:/{tracking.model_name}/{version.version}", folder)
    bundle = load_bundle(path, expected_model_sha256=version.tags.get("model_sha256"))
    log.info("loaded %s@%s = version %s (train run %s)", tracking.model_name, alias, version.version, version.run_id)
    return version, bundle
