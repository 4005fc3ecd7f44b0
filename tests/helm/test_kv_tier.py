"""The chart sizes worker pods for a pool's KV tier from the profile it embeds.

vLLM's CPU backend cannot run KV offloading, so the tier is tested here at
the chart level (rendered with Helm's own engine), not served.
"""

from __future__ import annotations

import pytest
import yaml

from tests.helm.rendering import REPO, render, the

pytest.importorskip("kubernetes_validate")

from cluster.config import load_config  # noqa: E402
from cluster.planner import worker_shapes  # noqa: E402


def h200_profile(**tiers) -> dict:
    profile = yaml.safe_load((REPO / "deployments" / "h200-141g.yaml").read_text())
    for pool in profile["pools"]:
        if pool["name"] in tiers:
            pool["kv_tier"] = tiers[pool["name"]]
    return profile


def worker_groups(chart, profile, **values):
    docs = render(chart, {"clusterYaml": yaml.safe_dump(profile), **values})
    groups = the(docs, "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    return {g["groupName"]: g["template"]["spec"] for g in groups}


def memory_and_shm(pod) -> tuple[str, str, str]:
    resources = pod["containers"][0]["resources"]
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")["emptyDir"]["sizeLimit"]
    return resources["requests"]["memory"], resources["limits"]["memory"], shm


def test_without_a_tier_pods_keep_their_size(chart):
    groups = worker_groups(chart, h200_profile())
    assert memory_and_shm(groups["h200-x1"]) == ("64Gi", "64Gi", "16Gi")
    assert memory_and_shm(groups["h200-x2"]) == ("128Gi", "128Gi", "16Gi")


def test_native_tier_grows_memory_and_shm_of_its_group(chart):
    profile = h200_profile(**{"il25-long": {"size_gib": 255.5}})
    groups = worker_groups(chart, profile)
    # TP2 pod: 2 x 64 Gi + ceil(255.5) + 1 Gi pinned overhead; /dev/shm gets the tier on top.
    assert memory_and_shm(groups["h200-x2"]) == ("385Gi", "385Gi", "273Gi")
    assert memory_and_shm(groups["h200-x1"]) == ("64Gi", "64Gi", "16Gi")


def test_group_takes_its_largest_tier(chart):
    profile = h200_profile(**{"il25-short": {"size_gib": 64}, "il3-long": {"size_gib": 200}})
    groups = worker_groups(chart, profile)
    assert memory_and_shm(groups["h200-x1"]) == ("265Gi", "265Gi", "217Gi")


def test_lmcache_tier_leaves_pods_alone(chart):
    """LMCache keeps KV in its own server process, outside the engine pod."""
    profile = h200_profile(**{"il25-long": {"backend": "lmcache", "size_gib": 500}})
    groups = worker_groups(chart, profile)
    assert memory_and_shm(groups["h200-x2"]) == ("128Gi", "128Gi", "16Gi")


@pytest.mark.parametrize("tiers", [{}, {"il25-long": {"size_gib": 255.5}},
                                   {"il25-short": {"size_gib": 64}, "il3-long": {"size_gib": 200}},
                                   {"il25-long": {"backend": "lmcache", "size_gib": 500}}])
def test_chart_and_planner_agree_on_tier_memory(chart, tiers):
    profile = h200_profile(**tiers)
    groups = worker_groups(chart, profile)
    for shape in worker_shapes(load_config(profile, env={})):
        name = f"{shape.accelerator.lower()}-x{shape.devices_per_pod}"
        memory = memory_and_shm(groups[name])[1]
        assert memory == f"{64 * shape.devices_per_pod + shape.kv_tier_memory_gib}Gi"


def test_shm_size_must_be_in_gi_with_a_tier(chart):
    profile = h200_profile(**{"il25-long": {"size_gib": 64}})
    with pytest.raises(Exception, match="must be in Gi"):
        worker_groups(chart, profile, workers={"shmSize": "16384Mi"})
