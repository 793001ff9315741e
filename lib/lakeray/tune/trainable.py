"""One Tune trial: train one family's XGBoost booster and report the validation score.

Runs inside a Ray Tune function trainable. Reports every `report_every` boosting rounds
(one ASHA time step) with a checkpoint, so an interrupted experiment resumes the trial
from its last report instead of from scratch.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from lakeray.models.bundle import MODEL_FILE

log = logging.getLogger(__name__)


def split_config(config: dict) -> tuple[str, dict]:
    """(family, hyper-parameters) from a trial config {"family": f, f: {...}}."""
    family = config["family"]
    return family, dict(config.get(family) or {})


def trial(config: dict, data: dict) -> None:
    import ray
    import ray.tune
    import xgboost

    from lakeray.models.families import booster_params, predict, score
    from lakeray.train.resources import xgboost_device

    family, hyper = split_config(config)
    fam_conf = data["families"][family]
    (x_train, y_train), (x_valid, y_valid) = data["standardized" if fam_conf.get("standardize") else "plain"]
    params = booster_params(fam_conf, hyper, data["task"], data["num_class"])
    params.update(nthread=data["nthread"], device=xgboost_device(ray.get_gpu_ids()), verbosity=0)
    rounds = max(1, int(round(fam_conf["rounds"] * data.get("rounds_scale", 1.0))))
    every = data["report_every"]
    dtrain = xgboost.DMatrix(x_train, label=y_train)
    start, offset = None, 0
    checkpoint = ray.tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            start = xgboost.Booster()
            start.load_model(str(Path(folder) / MODEL_FILE))
        offset = start.num_boosted_rounds()
    began = time.perf_counter()

    class Report(xgboost.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            done = offset + epoch + 1
            if done % every and done != rounds:
                return False
            metrics = {"score": score(data["task"], data["metric"], y_valid, predict(model, x_valid, data["task"])),
                       "rounds": done, "family": family, "train_seconds": time.perf_counter() - began,
                       "gpu_ids": [str(g) for g in ray.get_gpu_ids()], "device": params["device"],
                       "node_id": ray.get_runtime_context().get_node_id()}
            with tempfile.TemporaryDirectory() as folder:
                model.save_model(str(Path(folder) / MODEL_FILE))
                ray.tune.report(metrics, checkpoint=ray.tune.Checkpoint.from_directory(folder))
            return False

    if rounds - offset > 0:
        xgboost.train(params, dtrain, num_boost_round=rounds - offset, xgb_model=start, callbacks=[Report()],
                      verbose_eval=False)
