"""GPU-aware trial scheduling on Ray's logical GPUs (the suite's Ray has 2, and no real GPU)."""

from __future__ import annotations

import time

import pytest

from lakeray.errors import ResourceError
from lakeray.tune.resources import trial_resources, xgboost_device


def _run(ray, tmp_path, gpu, n):
    from ray import tune

    def probe(config):   # defined here so that Ray pickles it by value (workers cannot import tests/)
        import ray as ray_
        from ray import tune as tune_

        start = time.time()
        ids = [str(i) for i in ray_.get_gpu_ids()]
        time.sleep(2.0)
        tune_.report({"start": start, "end": time.time(), "gpu_ids": ",".join(ids),
                      "device": xgboost_device(ids), "done": 1})

    resources = trial_resources(0.25, gpu, ray.cluster_resources())
    tuner = tune.Tuner(tune.with_resources(probe, resources), param_space={"i": tune.grid_search(list(range(n)))},
                       tune_config=tune.TuneConfig(metric="done", mode="max"),
                       run_config=tune.RunConfig(storage_path=str(tmp_path), name=f"gpu{gpu}"))
    rows = [r.metrics for r in tuner.fit()]
    assert len(rows) == n
    events = sorted([(r["start"], 1) for r in rows] + [(r["end"], -1) for r in rows])
    running, peak = 0, 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return rows, peak


def test_whole_gpus_limit_concurrency_to_the_gpu_count(ray_local, tmp_path):
    rows, peak = _run(ray_local, tmp_path, 1, 4)
    assert peak <= 2
    assert all(len(r["gpu_ids"].split(",")) == 1 for r in rows)
    assert {r["gpu_ids"] for r in rows} <= {"0", "1"}
    assert {r["device"] for r in rows} == {"cpu"}        # logical GPUs only: XGBoost stays on the CPU


def test_half_gpus_let_twice_as_many_trials_share_them(ray_local, tmp_path):
    rows, peak = _run(ray_local, tmp_path, 0.5, 4)
    assert peak == 4
    ids = [r["gpu_ids"] for r in rows]
    assert set(ids) <= {"0", "1"} and all(ids.count(i) == 2 for i in set(ids))


@pytest.mark.fast
def test_impossible_requests_fail_at_once():
    with pytest.raises(ResourceError, match="asks for 1 GPU but the Ray cluster has 0"):
        trial_resources(1, 1, {"CPU": 2})
    with pytest.raises(ResourceError, match="fraction up to 1 or a whole number"):
        trial_resources(1, 1.5, {"CPU": 2, "GPU": 4})
    with pytest.raises(ResourceError, match="cpu must be > 0"):
        trial_resources(0, 0, {"CPU": 2})
    assert trial_resources(0.5, 0, {"CPU": 2}) == {"cpu": 0.5}
