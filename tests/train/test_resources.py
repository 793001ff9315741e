"""Training sizing: "auto" resolved from the nodes, and requests Ray would wait on forever fail at once."""

import pytest

from lakeray.errors import ResourceError
from lakeray.train.resources import Sizing, check_worker_resources, node_cpus, pick_engine, resolve_sizing

pytestmark = pytest.mark.fast

NODES = [{"Alive": True, "Resources": {"CPU": 8.0, "GPU": 1.0}},
         {"Alive": True, "Resources": {"CPU": 4.0}},
         {"Alive": True, "Resources": {"memory": 1e9}},           # a head node started with --num-cpus=0
         {"Alive": False, "Resources": {"CPU": 2.0}}]             # a dead node


def test_auto_is_one_worker_per_node_with_cpus_sized_to_the_smallest():
    assert node_cpus(NODES) == [8.0, 4.0]
    assert resolve_sizing([8.0, 4.0], "auto", "auto") == Sizing(2, 4.0, 0.0, 4)
    assert resolve_sizing([2.0], "auto", "auto") == Sizing(1, 2.0, 0.0, 2)   # this machine: 1 worker, 2 threads


def test_numbers_are_kept_and_mix_with_auto():
    assert resolve_sizing([2.0], 2, 0.5) == Sizing(2, 0.5, 0.0, 1)            # at least one thread
    assert resolve_sizing([2.0], 2, "auto", 0.5) == Sizing(2, 2.0, 0.5, 2)
    assert resolve_sizing([8.0, 4.0], "auto", 3) == Sizing(2, 3.0, 0.0, 3)
    assert resolve_sizing([], 2, 1) == Sizing(2, 1.0, 0.0, 1)                 # no auto: nodes not needed


def test_auto_without_nodes_and_nonsense_numbers_fail():
    with pytest.raises(ResourceError, match="no alive Ray node with CPUs"):
        resolve_sizing([], "auto", 1)
    with pytest.raises(ResourceError, match="must be positive numbers or 'auto'"):
        resolve_sizing([2.0], 0, 1)


def test_gpus_that_do_not_exist():
    with pytest.raises(ResourceError, match=r"2 worker\(s\) x 1.0 GPU = 2 GPU\(s\), but the Ray cluster has 0"):
        check_worker_resources({"CPU": 8}, 2, 1, 1.0)
    check_worker_resources({"CPU": 8, "GPU": 1}, 2, 1, 0.5)   # fractional GPUs fit


def test_more_cpus_than_the_cluster_or_a_node_has():
    with pytest.raises(ResourceError, match=r"2 worker\(s\) x 1.5 CPU = 3 CPU\(s\), but the Ray cluster has 2"):
        check_worker_resources({"CPU": 2}, 2, 1.5, 0)
    check_worker_resources({"CPU": 2}, 2, 1, 0)               # no CPU reserve any more: no Ray Data
    check_worker_resources({"CPU": 2}, 1, 2, 0, [2.0])
    with pytest.raises(ResourceError, match="6 CPU per worker, but the largest Ray node has 4"):
        check_worker_resources({"CPU": 12}, 2, 6, 0, [4.0, 4.0, 4.0])


def test_the_engine_is_a_task_for_one_worker_and_ray_train_for_more():
    one, two = Sizing(1, 2.0, 0.0, 2), Sizing(2, 1.0, 0.0, 1)
    assert pick_engine("auto", one) == "ray_task" and pick_engine("auto", two) == "ray_train"
    assert pick_engine("ray_train", one) == "ray_train" and pick_engine("ray_task", one) == "ray_task"
    with pytest.raises(ResourceError, match="ray_task trains on one worker, but num_workers is 2"):
        pick_engine("ray_task", two)
    with pytest.raises(ResourceError, match="train.engine 'spark' is not one of auto, ray_train, ray_task"):
        pick_engine("spark", one)
