"""Upgrades, drains and node placement in the rendered chart (issue 23).

The longest request a profile allows decides how long KubeRay keeps a
replaced RayCluster (rayClusterDeletionDelaySeconds), how long Kubernetes lets
a Ray pod stop (terminationGracePeriodSeconds) and the deadline of the preStop
drain; these tests compute it from the profile with the project's own config
loader and compare. Every render also passes KubeRay's rules
(tests/helm/kuberay_validation.py).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from cluster.config import load_config
from cluster.planner import worker_shapes
from cluster.planner.memory import ACCELERATOR_MEMORY_GIB
from tests.helm import kuberay_validation as kuberay
from tests.helm.rendering import CASES, CHART, PROFILE_CASES, REPO, helm, kinds, profile_values, render, the

DEFAULT_VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
MARGIN_S = DEFAULT_VALUES["drain"]["marginSeconds"]
EXIT_S = DEFAULT_VALUES["drain"]["exitSeconds"]


def longest_request_s(profile: str) -> int:
    """The longest a request of the profile may live, from the config the app loads."""
    cluster = load_config(REPO / "deployments" / f"{profile}.yaml", env={})
    longest = cluster.ingress.request_timeout_s
    for pool in cluster.pools:
        longest = max(longest, pool.request_timeout_s or 0, pool.graceful_shutdown_timeout_s or 0)
    return int(-(-longest // 1))


def ray_pods(rayservice):
    """(name, pod spec) of the head and of every worker group."""
    cluster = rayservice["spec"]["rayClusterConfig"]
    yield "head", cluster["headGroupSpec"]["template"]["spec"]
    for group in cluster["workerGroupSpecs"]:
        yield group["groupName"], group["template"]["spec"]


def profile_of(values: dict) -> str:
    """The deployments/ profile a values file deploys: its clusterYaml, else values.yaml's (a100-80g)."""
    text = values.get("clusterYaml")
    if not text:
        return "a100-80g"
    return next(f.stem for f in (REPO / "deployments").glob("*.yaml") if f.read_text().strip() == text.strip())


def all_renders(rendered, rendered_profiles):
    """(profile, RayService) of every values file and every GPU profile."""
    for values, case in (p.values for p in CASES):
        yield profile_of(values), the(rendered[case], "RayService")
    for profile, docs in rendered_profiles.items():
        yield profile, the(docs, "RayService")


def _rayservice(chart, values):
    rs = the(render(chart, values), "RayService")
    kuberay.check(rs)
    return rs


# --- autoscaler v2 -----------------------------------------------------------------------


def test_idle_timeouts_only_with_autoscaler_v2(rendered, rendered_profiles):
    for profile, rs in all_renders(rendered, rendered_profiles):
        cluster = rs["spec"]["rayClusterConfig"]
        assert cluster["enableInTreeAutoscaling"] is True
        assert cluster["autoscalerOptions"]["version"] == "v2", profile
        assert all(g["idleTimeoutSeconds"] == 600 for g in cluster["workerGroupSpecs"]), profile


@pytest.mark.parametrize("autoscaler", [{"version": "v1"}, {"enabled": False}], ids=["v1", "off"])
def test_without_autoscaler_v2_groups_get_no_idle_timeout(chart, autoscaler):
    rs = _rayservice(chart, {"autoscaler": autoscaler})
    assert not any("idleTimeoutSeconds" in g for g in rs["spec"]["rayClusterConfig"]["workerGroupSpecs"])


# --- upgrades ------------------------------------------------------------------------------


def test_deletion_delay_covers_the_longest_request(rendered, rendered_profiles):
    seen = set()
    for profile, rs in all_renders(rendered, rendered_profiles):
        longest = longest_request_s(profile)
        assert rs["spec"]["rayClusterDeletionDelaySeconds"] == longest + MARGIN_S, profile
        seen.add(longest)
    assert {3600, 7200} <= seen  # the 1-GPU profiles stop at an hour, the 1M ones at two


def test_a_pool_timeout_longer_than_the_ingress_one_sets_the_delay(chart):
    profile = yaml.safe_load((REPO / "deployments" / "h200-1gpu.yaml").read_text())
    profile["pools"][0]["graceful_shutdown_timeout_s"] = 5000.5
    rs = _rayservice(chart, {"clusterYaml": yaml.safe_dump(profile)})
    assert rs["spec"]["rayClusterDeletionDelaySeconds"] == 5001 + MARGIN_S


def test_a_deletion_delay_shorter_than_a_request_fails(chart):
    rs = _rayservice(chart, {"rayClusterDeletionDelaySeconds": 9000})
    assert rs["spec"]["rayClusterDeletionDelaySeconds"] == 9000
    with pytest.raises(helm.HelmError, match="shorter than the profile's longest request"):
        render(chart, {"rayClusterDeletionDelaySeconds": 60})


@pytest.mark.parametrize("strategy", ["NewCluster", "None"])
def test_other_strategies_render_no_upgrade_options(chart, strategy):
    rs = _rayservice(chart, {"upgradeStrategy": strategy})
    assert rs["spec"]["upgradeStrategy"] == {"type": strategy}


def test_incremental_upgrade_renders_options_kuberay_accepts(chart):
    docs = render(chart, {"upgradeStrategy": "NewClusterWithIncrementalUpgrade",
                          "clusterUpgradeOptions": {"gatewayClassName": "istio"}})
    rs = the(docs, "RayService")
    kuberay.check(rs)
    assert rs["spec"]["upgradeStrategy"] == {
        "type": "NewClusterWithIncrementalUpgrade",
        "clusterUpgradeOptions": {"gatewayClassName": "istio", "maxSurgePercent": 25, "stepSizePercent": 25,
                                  "intervalSeconds": 300}}
    # KubeRay creates no serve Service then: the smoke test goes to the head's Service.
    hook = the(docs, "Pod")["spec"]["containers"][0]["args"]
    assert "--base-url=http://lc-longctx-cluster-head-svc:8000" in hook


@pytest.mark.parametrize("values, message", [
    ({}, "needs clusterUpgradeOptions.gatewayClassName"),
    ({"clusterUpgradeOptions": {"gatewayClassName": "eg"}, "autoscaler": {"enabled": False}}, "needs autoscaler"),
    ({"clusterUpgradeOptions": {"gatewayClassName": "eg", "stepSizePercent": 50}}, "must not exceed maxSurgePercent"),
    ({"clusterUpgradeOptions": {"gatewayClassName": "eg"}, "ingress": {"enabled": True}}, "Gateway"),
], ids=["no-gateway-class", "no-autoscaler", "step-over-surge", "ingress"])
def test_incremental_upgrade_refuses_what_kuberay_would(chart, values, message):
    with pytest.raises(helm.HelmError, match=message):
        render(chart, {"upgradeStrategy": "NewClusterWithIncrementalUpgrade", **values})


def test_values_say_what_none_really_does():
    text = (CHART / "values.yaml").read_text()
    strategy = text[text.index("# What KubeRay"):text.index("upgradeStrategy:")]
    assert "IGNORES every change to the cluster" in strategy
    assert "restart in place" not in text and "in-place upgrade" not in text


# --- drains ---------------------------------------------------------------------------------


def test_every_ray_pod_drains_within_its_grace_period(rendered, rendered_profiles):
    for profile, rs in all_renders(rendered, rendered_profiles):
        grace = longest_request_s(profile) + MARGIN_S
        for name, pod in ray_pods(rs):
            assert pod["terminationGracePeriodSeconds"] == grace, (profile, name)
            command = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
            assert command == ["python", "-m", "cluster", "drain-node", "--deadline-s", str(grace - EXIT_S)]
            # The drain outlasts the longest request, and returns before the kubelet's SIGKILL.
            assert longest_request_s(profile) <= grace - EXIT_S < grace


def test_the_prestop_command_is_the_projects_drain_command(rendered):
    pod = dict(ray_pods(the(rendered["default"], "RayService")))["head"]
    command = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:4] == ["python", "-m", "cluster", "drain-node"]
    helped = subprocess.run([sys.executable, *command[1:4], "--help"], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert helped.returncode == 0, helped.stderr
    assert "--deadline-s" in helped.stdout


def test_drain_settings_in_values(chart):
    rs = _rayservice(chart, {"drain": {"terminationGracePeriodSeconds": 900}})
    for _, pod in ray_pods(rs):
        assert pod["terminationGracePeriodSeconds"] == 900
        assert pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][-1] == str(900 - EXIT_S)
    rs = _rayservice(chart, {"drain": {"preStop": False}})
    assert not any("lifecycle" in pod["containers"][0] for _, pod in ray_pods(rs))
    with pytest.raises(helm.HelmError, match="leaves no time to drain"):
        render(chart, {"drain": {"terminationGracePeriodSeconds": EXIT_S}})


@pytest.mark.parametrize("choice, single, many", [
    ("drain", {"maxUnavailable": 1}, {"maxUnavailable": 1}),
    ("block", {"minAvailable": 1}, {"maxUnavailable": 1}),
])
def test_single_replica_groups_pdb_is_a_values_choice(chart, choice, single, many):
    # h200x4-1m: the 1M pool's 4-GPU group has maxReplicas 1, the short pool's group 4.
    values = {**profile_values("h200x4-1m"), "podDisruptionBudget": {"singleReplicaGroups": choice}}
    docs = render(chart, values)
    groups = {g["groupName"]: g for g in the(docs, "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"]}
    assert (groups["h200-x4"]["maxReplicas"], groups["h200-x1"]["maxReplicas"]) == (1, 4)
    pdbs = {d["spec"]["selector"]["matchLabels"]["longctx.io/worker-group"]: d["spec"]
            for d in kinds(docs, "PodDisruptionBudget") if "longctx.io/worker-group" in d["spec"]["selector"]["matchLabels"]}
    assert {k: v for k, v in pdbs["h200-x4"].items() if k != "selector"} == single
    assert {k: v for k, v in pdbs["h200-x1"].items() if k != "selector"} == many


# --- pools without accelerator_type ---------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILE_CASES)
def test_pools_without_accelerator_type_land_on_the_default_gpu(profile, rendered_profiles):
    rs = the(rendered_profiles[profile], "RayService")
    cluster = load_config(REPO / "deployments" / f"{profile}.yaml", env={})
    default = DEFAULT_VALUES["defaultAccelerator"]
    expected = {(s.accelerator or default, s.devices_per_pod): (s.min_replicas, s.max_replicas)
                for s in worker_shapes(cluster)}
    got = {}
    for group in rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]:
        pod = group["template"]["spec"]
        accelerator = group["template"]["metadata"]["labels"]["longctx.io/accelerator"]
        assert pod["nodeSelector"] == DEFAULT_VALUES["accelerators"][accelerator]["nodeSelector"]
        got[(accelerator, int(pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]))] = (
            group["minReplicas"], group["maxReplicas"])
    assert got == expected


def test_the_default_gpu_is_a_values_key_and_notes_say_so(chart):
    rs = _rayservice(chart, {**profile_values("h200-1gpu"), "defaultAccelerator": "GB200",
                             "accelerators": {"GB200": {"nodeSelector": {"gpu": "big"}, "memoryGiB": 186}}})
    group = rs["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    assert group["groupName"] == "gb200-x1"
    assert group["template"]["spec"]["nodeSelector"] == {"gpu": "big"}
    notes = next(v for k, v in chart.render(profile_values("h200-1gpu"), name="lc", namespace="llm").items()
                 if k.endswith("NOTES.txt"))
    assert "Pools without accelerator_type (il25-short, il25-long) run on defaultAccelerator H200 nodes" in notes
    # Its two engines share one GPU; Kubernetes pods still take whole GPUs, and NOTES says so.
    assert "Pools il25-short, il25-long share GPUs" in notes
    default_notes = next(v for k, v in chart.render({}, name="lc", namespace="llm").items() if k.endswith("NOTES.txt"))
    assert "accelerator_type" not in default_notes and "share GPUs" not in default_notes


def test_a_default_gpu_smaller_than_the_profile_was_planned_for_fails(chart):
    # h200-1gpu splits 140.4 GiB between its engines; an H100 has 79.6.
    with pytest.raises(helm.HelmError, match="planned for 140.4 GiB per GPU"):
        render(chart, {**profile_values("h200-1gpu"), "defaultAccelerator": "H100"})
    with pytest.raises(helm.HelmError, match="no entry in accelerators"):
        render(chart, {**profile_values("h200-1gpu"), "defaultAccelerator": "B200"})


def test_accelerator_memory_is_the_planners():
    for name, entry in DEFAULT_VALUES["accelerators"].items():
        assert entry["memoryGiB"] == pytest.approx(ACCELERATOR_MEMORY_GIB[name], abs=0.05), name
