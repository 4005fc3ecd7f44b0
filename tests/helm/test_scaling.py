"""Scaling one pool touches one pool: replica bounds and drain timeouts are Serve deployment options.

Serve restarts every deployment of an application whose code version changes,
and the code version is a hash of the app's import path, runtime env and args
(ray.serve._private.deploy_utils.get_app_code_version). These tests render the
chart before and after a change of one pool's replicas and check, with Serve's
own functions, that the code version stays and only that pool's options (and
the ingress's view of its bounds) change, each an option Serve applies to live
replicas. The options must also be what the app sets for `python -m cluster run`.
"""

from __future__ import annotations

import copy

import pytest
import yaml

from cluster.config import load_config
from deployments.engines import pool_deployment_name
from deployments.ingress.deployment import IngressDeployment
from deployments.serve_options import (
    ingress_serve_options,
    pool_replicas_from_user_config,
    pool_serve_options,
    without_serve_options,
)
from tests.helm.rendering import CASES, REPO, helm, render, the, without_shape_resources
from tests.helm.test_chart import PROFILE_OF

PROFILES = sorted((REPO / "deployments").glob("*.yaml"))
GPU_PROFILES = [p for p in PROFILES if yaml.safe_load(p.read_text()).get("device", "gpu") == "gpu"]


def serve_app(docs) -> dict:
    (app,) = yaml.safe_load(the(docs, "RayService")["spec"]["serveConfigV2"])["applications"]
    return app


def by_name(app) -> dict[str, dict]:
    return {d["name"]: d for d in app["deployments"]}


def code_version(app) -> str:
    from ray.serve._private.deploy_utils import get_app_code_version
    from ray.serve.schema import ServeApplicationSchema

    return get_app_code_version(ServeApplicationSchema.model_validate(app))


def worker_group_max(docs) -> dict[str, int]:
    groups = the(docs, "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    return {g["groupName"]: g["maxReplicas"] for g in groups}


def restarting_options(changed: dict) -> list[str]:
    """Options among ``changed`` that Serve's DeploymentConfig marks HeavyWeight (restart every replica)."""
    from ray.serve._private.config import DeploymentConfig
    from ray.serve._private.utils import DeploymentOptionUpdateType

    heavy = []
    for name in changed:
        field = DeploymentConfig.model_fields[name]
        if (field.json_schema_extra or {}).get("update_type") == DeploymentOptionUpdateType.HeavyWeight:
            heavy.append(name)
    return heavy


@pytest.fixture(scope="module")
def h100_profile() -> dict:
    return yaml.safe_load((REPO / "deployments" / "h100-80g.yaml").read_text())


@pytest.mark.parametrize("how", ["profile", "override"])
def test_one_pools_max_changes_only_that_deployments_options(chart, h100_profile, how):
    pool = h100_profile["pools"][0]["name"]
    before_max = h100_profile["pools"][0]["replicas"]["max"]
    before = render(chart, {"clusterYaml": yaml.safe_dump(h100_profile)})
    if how == "profile":
        changed = copy.deepcopy(h100_profile)
        changed["pools"][0]["replicas"]["max"] = before_max + 3
        after = render(chart, {"clusterYaml": yaml.safe_dump(changed)})
    else:
        after = render(chart, {"clusterYaml": yaml.safe_dump(h100_profile),
                               "overrides": [f"pools.{pool}.replicas.max={before_max + 3}"]})
    old, new = serve_app(before), serve_app(after)

    # The args, and with them Serve's code version, are the same: no rebuild, no restart.
    assert new["args"] == old["args"]
    assert code_version(new) == code_version(old)

    old_options, new_options = by_name(old), by_name(new)
    assert old_options.keys() == new_options.keys()
    moved = pool_deployment_name(pool)
    differ = {name for name in old_options if old_options[name] != new_options[name]}
    assert differ == {moved, IngressDeployment.name}
    assert new_options[moved]["autoscaling_config"]["max_replicas"] == before_max + 3
    assert {k for k in new_options[moved] if new_options[moved][k] != old_options[moved][k]} == {"autoscaling_config"}
    # The ingress is told the new bound (its admission limit follows it): a reconfigure, not a restart.
    ingress_diff = {k for k in new_options[IngressDeployment.name]
                    if new_options[IngressDeployment.name][k] != old_options[IngressDeployment.name][k]}
    assert ingress_diff == {"user_config"}
    assert new_options[IngressDeployment.name]["user_config"]["pool_replicas"][pool]["max"] == before_max + 3
    assert restarting_options(ingress_diff | {"autoscaling_config"}) == []

    # The worker group that hosts the pool may grow by as much.
    old_groups, new_groups = worker_group_max(before), worker_group_max(after)
    grown = {g: new_groups[g] - old_groups[g] for g in old_groups if new_groups[g] != old_groups[g]}
    assert list(grown.values()) == [3]


def test_today_a_change_in_the_args_would_restart_everything(chart, h100_profile):
    """The check above can fail: a change that does belong to the args moves the code version."""
    changed = copy.deepcopy(h100_profile)
    changed["pools"][0]["engine"]["max_num_seqs"] += 1
    old = serve_app(render(chart, {"clusterYaml": yaml.safe_dump(h100_profile)}))
    new = serve_app(render(chart, {"clusterYaml": yaml.safe_dump(changed)}))
    assert code_version(new) != code_version(old)


@pytest.mark.parametrize("profile", GPU_PROFILES, ids=lambda p: p.stem)
def test_chart_options_are_the_apps_and_args_lack_them(chart, profile):
    """What the chart renders is what the builder sets for `python -m cluster run`, for every GPU profile."""
    try:
        docs = render(chart, {"clusterYaml": profile.read_text(), "auth": {"enabled": False},
                              "documentStore": {"mode": "external", "external": {"url": "redis://r:6379/0"}}})
    except helm.HelmError as exc:  # rendering itself is another test's subject (tests/helm/test_chart.py)
        pytest.skip(f"{profile.name} does not render here: {str(exc)[:200]}")
    app = serve_app(docs)
    cluster = load_config(profile, env={})
    options = by_name(app)
    for pool in cluster.pools:
        expected = pool_serve_options(cluster, pool)
        got = {k: v for k, v in options[pool_deployment_name(pool.name)].items() if k != "name"}
        assert got == expected, pool.name
    ingress = {k: v for k, v in options[IngressDeployment.name].items() if k != "name"}
    assert ingress == ingress_serve_options(cluster)
    assert without_shape_resources(app["args"]["cluster"]) == without_serve_options(yaml.safe_load(profile.read_text()))


@pytest.mark.parametrize("values, case", CASES)
def test_args_and_options_give_back_the_profile(values, case, rendered):
    """The app as Serve runs it: the args' profile (pools at default replicas) plus the
    ingress's user_config is the whole profile, so admission and /v1/pools are right."""
    app = serve_app(rendered[case])
    from_args = load_config(without_shape_resources(app["args"]["cluster"]), app["args"].get("overrides", []), env={})
    user_config = by_name(app)[IngressDeployment.name]["user_config"]
    for name, replicas in pool_replicas_from_user_config(user_config).items():
        from_args.pool(name).replicas = replicas
    # The default values and helm/ci/*.yaml carry these profiles (tests/helm/test_chart.py checks).
    profile = REPO / "deployments" / f"{PROFILE_OF[case]}.yaml"
    assert from_args == load_config(profile, app["args"].get("overrides", []), env={})
    for pool in from_args.pools:
        assert by_name(app)[pool_deployment_name(pool.name)]["autoscaling_config"]["max_replicas"] == pool.replicas.max


def test_graceful_shutdown_override_is_an_option_not_an_arg(chart, h100_profile):
    pool = h100_profile["pools"][0]["name"]
    before = serve_app(render(chart, {"clusterYaml": yaml.safe_dump(h100_profile)}))
    after = serve_app(render(chart, {"clusterYaml": yaml.safe_dump(h100_profile),
                                     "overrides": [f"pools.{pool}.graceful_shutdown_timeout_s=9000"]}))
    assert after["args"] == before["args"]
    assert by_name(after)[pool_deployment_name(pool)]["graceful_shutdown_timeout_s"] == 9000
    # The ingress relays that pool's answers: it waits as long.
    assert by_name(after)[IngressDeployment.name]["graceful_shutdown_timeout_s"] == 9000


@pytest.mark.parametrize("override, message", [
    ("pools.nope.replicas.max=2", "no pool named nope"),
    ("pools.il25-short.replicas.maximum=2", "replicas has min, max"),
    ("pools.il25-short.replicas.min=9", "min <= initial <= max"),
])
def test_bad_scaling_overrides_fail_the_render(chart, override, message):
    with pytest.raises(helm.HelmError, match=message):
        chart.render({"overrides": [override]}, name="lc", namespace="llm")
