"""Model families as XGBoost parameters, prediction per task and the selection score.

Every family is an XGBoost booster (gbtree boosting, random-forest mode, gblinear), so every
candidate trains data-parallel on Ray Train and is stored as UBJSON, never pickled.
"""

from __future__ import annotations

import numpy as np

from lakeray.errors import ConfigError

FAMILIES = ("xgboost", "random_forest", "logistic")
OBJECTIVES = {
    "binary": {"objective": "binary:logistic", "eval_metric": "logloss"},
    "multiclass": {"objective": "multi:softprob", "eval_metric": "mlogloss"},
    "regression": {"objective": "reg:squarederror", "eval_metric": "rmse"},
}


def booster_params(family_conf: dict, hyper: dict, task: str, num_class: int = 0) -> dict:
    """Objective for the task + the family's fixed params + the searched hyper-parameters."""
    params = {**OBJECTIVES[task], **family_conf.get("fixed", {}), **hyper}
    if task == "multiclass":
        if num_class < 2:
            raise ConfigError(f"a multiclass task needs at least 2 classes, got {num_class}")
        params["num_class"] = num_class
    return params


def dmatrix(x, y=None, feature_types: list[str] | None = None, nthread: int | None = None):
    """An XGBoost DMatrix of a dense float32 array (NaN missing; categorical columns as codes where
    `feature_types` says "c") or a CSR matrix (one-hot); nthread builds it (None: all cores)."""
    import xgboost

    if feature_types and "c" in feature_types:
        return xgboost.DMatrix(x, label=y, feature_types=feature_types, enable_categorical=True, nthread=nthread)
    return xgboost.DMatrix(x, label=y, nthread=nthread)


def predict(booster, matrix, task: str, iteration_range: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Probability of the positive class (binary), class probabilities (multiclass) or values.

    Dense matrices of tree boosters go through inplace_predict (no DMatrix: about half the cost
    of one row); categorical splits are stored in the trees, so codes need no feature types here.
    gblinear has no inplace prediction (CSR input is one-hot for linear models) and no
    iteration_range: a linear model always predicts with all of its rounds."""
    import scipy.sparse as sp

    if matrix.shape[0] == 0:    # what XGBoost gives for no rows (no class axis), without its "Empty dataset" warning
        return np.empty(0, dtype=np.float32)
    if is_linear(booster):
        return booster.predict(dmatrix(matrix))
    if sp.issparse(matrix):
        return booster.predict(dmatrix(matrix), iteration_range=iteration_range)
    return booster.inplace_predict(np.asarray(matrix, dtype=np.float32), iteration_range=iteration_range)


def is_linear(booster) -> bool:
    """A gblinear booster (read once from its config, then remembered on the object)."""
    linear = getattr(booster, "_lakeray_linear", None)
    if linear is None:
        import json

        linear = json.loads(booster.save_config())["learner"]["gradient_booster"]["name"] == "gblinear"
        booster._lakeray_linear = linear
    return linear
