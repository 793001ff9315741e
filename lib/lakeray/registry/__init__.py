"""MLflow: tracking (runs, params, metrics, artifacts, lineage) and the model registry."""

from lakeray.registry.tracking import Tracking, configure_tracking

__all__ = ["Tracking", "configure_tracking"]
