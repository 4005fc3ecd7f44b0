"""Kubernetes worker groups from the pools (cluster/planner/shapes.py)."""

from cluster.config import load_config, profile_path
from cluster.planner import worker_shapes


def test_worker_shapes_group_pools_by_gpu_shape(profile_env):
    shapes = {(s.accelerator, s.devices_per_pod): s for s in
              worker_shapes(load_config(profile_path("a100-80g")))}
    assert set(shapes) == {("A100-80G", 1), ("A100-80G", 2), ("A100-80G", 4)}
    one = shapes[("A100-80G", 1)]
    assert one.pools == ("il25-short", "il3-short", "il3-long")
    assert (one.min_replicas, one.max_replicas) == (3, 14)
    assert shapes[("A100-80G", 2)].pools == ("il25-mid",)
    assert shapes[("A100-80G", 4)].max_replicas == 2
