"""Shape isolation: each worker group advertises a Ray resource of its own and each pool's bundles ask for
it, so a replica lands only in a pod of its own shape (accelerator_type x tensor_parallel_size)."""

from __future__ import annotations

import json

import pytest

from deployments.engines import placement_bundles
from tests.helm.rendering import CASES, PROFILE_CASES, app_profile, helm, render, the
from tests.helm.test_chart import serve_config

# Ray's own resources: counted by Ray on every node, not a mark of one group.
BUILTIN = {"CPU", "GPU", "memory", "object_store_memory"}


def advertised(group: dict) -> dict[str, float]:
    """The custom resources a group's pods give Ray (`ray start --resources`), read by the Ray autoscaler's
    own KubeRay parser: what it believes a new pod of the group offers is what it scales the group for."""
    from ray.autoscaler._private.kuberay.autoscaling_config import _get_custom_resources

    resources = _get_custom_resources({}, group["rayStartParams"], group["groupName"])
    assert resources == json.loads(json.loads(group["rayStartParams"]["resources"]))  # and what `ray start` gets
    return resources


def landing_groups(docs: list[dict]) -> dict[str, set[str]]:
    """For every pool: the worker groups whose pods offer every custom resource its bundles ask for
    (the bundles the Serve app builds from the profile the chart hands it)."""
    rayservice = the(docs, "RayService")
    groups = rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    cluster = app_profile(serve_config(rayservice)["applications"][0])
    landing = {}
    for pool in cluster.pools:
        asked = set().union(*(b.keys() for b in placement_bundles(pool, cluster.device))) - BUILTIN
        if pool.accelerator_type:  # Ray Serve LLM adds accelerator_type:<type> to every bundle
            asked.add(f"accelerator_type:{pool.accelerator_type}")
        landing[pool.name] = {g["groupName"] for g in groups if asked <= set(advertised(g))}
    return landing


def group_of_resource(docs: list[dict]) -> dict[str, str]:
    """longctx-group-<name> -> <name>, checking that each group advertises its own."""
    groups = the(docs, "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    own = {}
    for group in groups:
        resource = f"longctx-group-{group['groupName']}"
        assert advertised(group)[resource] == 1
        own[resource] = group["groupName"]
    return own


def expected_landing(docs: list[dict]) -> dict[str, set[str]]:
    rayservice = the(docs, "RayService")
    cluster = app_profile(serve_config(rayservice)["applications"][0])
    own = group_of_resource(docs)
    landing = {}
    for pool in cluster.pools:
        (resource,) = [k for k in placement_bundles(pool, cluster.device)[0] if k.startswith("longctx-group-")]
        landing[pool.name] = {own[resource]}
    return landing


@pytest.mark.parametrize("values, case", CASES)
def test_every_pool_lands_only_in_its_own_group(values, case, rendered):
    docs = rendered[case]
    landing = landing_groups(docs)
    assert all(len(groups) == 1 for groups in landing.values()), landing
    assert landing == expected_landing(docs)


@pytest.mark.parametrize("profile", PROFILE_CASES)
def test_every_shipped_gpu_profile_isolates_its_shapes(profile, rendered_profiles):
    docs = rendered_profiles[profile]
    landing = landing_groups(docs)
    assert all(len(groups) == 1 for groups in landing.values()), landing
    # Each group's pools are exactly those of its shape: TP sizes never share a group.
    rayservice = the(docs, "RayService")
    cluster = app_profile(serve_config(rayservice)["applications"][0])
    groups = rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    devices = {g["groupName"]: int(g["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
               for g in groups}
    for pool in cluster.pools:
        (group,) = landing[pool.name]
        assert devices[group] == pool.engine.tensor_parallel_size


def test_the_a100_profiles_tp1_pools_cannot_take_the_tp4_pod(rendered):
    landing = landing_groups(rendered["a100-80g"])
    assert landing["il25-short"] == landing["il3-short"] == {"a100-80g-x1"}
    assert landing["il25-long"] == {"a100-80g-x4"}


def test_a_pools_own_gpu_share_is_kept_beside_the_group_resource(chart, rendered_profiles):
    # h200x4-1m shares GPUs (worker_resources GPU 0.55 / 0.40): the chart adds to them, never replaces.
    rayservice = the(rendered_profiles["h200x4-1m"], "RayService")
    cluster = app_profile(serve_config(rayservice)["applications"][0])
    shares = {p.name: p.worker_resources["GPU"] for p in cluster.pools}
    assert shares == {"il25-long": 0.55, "il25-short": 0.40}
    assert cluster.pool("il25-long").worker_resources["longctx-group-h200-x4"] == 0.001


def test_cpu_groups_advertise_their_resource_and_no_gpus(chart, monkeypatch):
    from tests.helm.rendering import REPO
    monkeypatch.chdir(REPO / "deployments")  # the demo's model paths are relative to its profile
    docs = render(chart, {"clusterYaml": (REPO / "deployments" / "cpu-demo.yaml").read_text(),
                          "weights": {"source": "none"}})
    landing = landing_groups(docs)
    assert landing == {"il25-short": {"cpu-x1"}, "il25-long": {"cpu-x2"}, "il3-short": {"cpu-x1"},
                       "il3-long": {"cpu-x1"}}
    for group in the(docs, "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"]:
        assert group["rayStartParams"]["num-gpus"] == "0"


@pytest.mark.parametrize("params", [{"resources": '{"tp4": 1}'}, {"num-gpus": "1"}])
def test_worker_ray_start_params_cannot_replace_the_groups_resources(chart, params):
    # The old recipe (workers.rayStartParams.resources) replaced accelerator_type on every group,
    # leaving every pool unschedulable; the chart now sets the resources and refuses the key.
    values = {"workers": {"rayStartParams": params}}
    if "num-gpus" in params:  # owned on CPU groups only
        from tests.helm.rendering import REPO
        values |= {"clusterYaml": (REPO / "deployments" / "cpu-demo.yaml").read_text(), "weights": {"source": "none"}}
    with pytest.raises(helm.HelmError, match="the chart sets each worker group's"):
        chart.render(values, name="lc", namespace="llm")


def test_other_worker_ray_start_params_still_reach_every_group(chart):
    docs = render(chart, {"workers": {"rayStartParams": {"metrics-export-port": 8080}}})
    for group in the(docs, "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"]:
        assert group["rayStartParams"]["metrics-export-port"] == "8080"
        assert "accelerator_type:A100-80G" in advertised(group)
