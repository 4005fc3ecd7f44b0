"""Shape isolation on real Ray nodes: a pool's placement bundles, built by the app from a profile whose pool asks
for a custom resource (as the Helm chart adds its worker group's `longctx-group-<group>`), are placed only on the
node that advertises it, and nowhere while no node does (tests/helm/test_shapes.py checks the chart's side).

Runs before test_two_nodes.py, which kills the worker node: here both nodes are up, and only the worker node
advertises `e2e_node_w1`. The bundles ask for that resource alone (both nodes' CPUs are taken by the pool's
replicas), so only the resource decides where they go.
"""

from __future__ import annotations

import pytest

from cluster.config import load_config
from deployments.engines import placement_bundles
from tests.e2e_nodes.nodes import node_id_with

pytestmark = [pytest.mark.e2e]


def bundles_asking_for(two_nodes, resource: str) -> list[dict[str, float]]:
    raw = dict(two_nodes.profile)
    raw["pools"] = [{**raw["pools"][0], "worker_resources": {resource: 0.001},
                     "engine": {**raw["pools"][0]["engine"], "tensor_parallel_size": 2}}]
    cluster = load_config(raw, env={})
    return placement_bundles(cluster.pools[0], cluster.device)


def test_a_pools_bundles_land_only_on_the_node_advertising_its_resource(two_nodes):
    import ray
    from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group

    worker = node_id_with("e2e_node_w1")
    placed = placement_group(bundles_asking_for(two_nodes, "e2e_node_w1"), strategy="STRICT_PACK")
    nowhere = placement_group(bundles_asking_for(two_nodes, "longctx-group-absent-x2"), strategy="STRICT_PACK")
    try:
        ray.get(placed.ready(), timeout=60)
        assert set(placement_group_table(placed)["bundles_to_node_id"].values()) == {worker}
        # No node of that shape: the bundles wait (the autoscaler would start one) rather than take another node.
        assert not nowhere.wait(timeout_seconds=2)
        assert placement_group_table(nowhere)["state"] == "PENDING"
    finally:
        remove_placement_group(placed)
        remove_placement_group(nowhere)
