"""Requests that Ray would wait on forever fail at once, with the numbers."""

import pytest

from lakeray.errors import ResourceError
from lakeray.train.resources import check_worker_resources


def test_gpus_that_do_not_exist():
    with pytest.raises(ResourceError, match=r"2 worker\(s\) x 1.0 GPU = 2 GPU\(s\), but the Ray cluster has 0"):
        check_worker_resources({"CPU": 8}, 2, 1, 1.0)
    check_worker_resources({"CPU": 8, "GPU": 1}, 2, 1, 0.5)   # fractional GPUs fit


def test_no_cpu_left_for_ray_data():
    with pytest.raises(ResourceError, match=r"= 2.5 CPU\(s\), but the Ray cluster has 2: the dataset read would stall"):
        check_worker_resources({"CPU": 2}, 2, 1, 0)
    check_worker_resources({"CPU": 2}, 2, 0.5, 0)
