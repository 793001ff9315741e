"""Model families (all XGBoost boosters), prediction per task, and the saved model bundle."""

from lakeray.models.bundle import ModelBundle, load_bundle
from lakeray.models.families import FAMILIES, booster_params, predict

__all__ = ["FAMILIES", "ModelBundle", "booster_params", "load_bundle", "predict"]
