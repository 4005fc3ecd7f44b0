"""The chart against KubeRay v1.7.0's own rules (tests/helm/kuberay_validation.py).

Every values file (the defaults, helm/ci/*.yaml) and every GPU profile of
deployments/ passed whole as `--set-file clusterYaml=` renders a RayService
that the operator would accept. Each ported rule refuses a hand-made bad
spec, so the checker can fail; and it does fail on the chart before issue 23.
"""

from __future__ import annotations

import copy
import subprocess
import tarfile
from io import BytesIO

import jsonschema
import pytest
import yaml

from tests.helm import kuberay_validation as kuberay
from tests.helm.rendering import CASES, GPU_PROFILES, PROFILE_CASES, REPO, helm, profile_values, render, the

# The chart as it was when issue 23 was filed: KubeRay refuses its RayService.
CHART_BEFORE_ISSUE_23 = "3731495"


@pytest.mark.parametrize("values, case", CASES)
def test_values_files_pass_kuberays_validation(values, case, rendered):
    kuberay.check(the(rendered[case], "RayService"))


@pytest.mark.parametrize("profile", PROFILE_CASES)
def test_every_gpu_profile_renders_alone_and_passes_kuberays_validation(profile, rendered_profiles):
    kuberay.check(the(rendered_profiles[profile], "RayService"))


@pytest.fixture(scope="module")
def strict_crd_schema():
    from tests.helm.test_chart import CRD, _strict  # the CRD copy and its strict form, as test_chart uses them

    if not CRD.is_file():
        pytest.skip(f"KubeRay CRD copy absent at {CRD}")
    crd = yaml.safe_load(CRD.read_text())
    return _strict(next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"])


def test_profiles_and_the_incremental_upgrade_match_the_crd(chart, rendered_profiles, strict_crd_schema):
    incremental = render(chart, {"upgradeStrategy": "NewClusterWithIncrementalUpgrade",
                                 "clusterUpgradeOptions": {"gatewayClassName": "istio"}})
    validator = jsonschema.validators.validator_for(strict_crd_schema)(strict_crd_schema)  # schema checked once
    for docs in [incremental, *rendered_profiles.values()]:
        validator.validate({k: v for k, v in the(docs, "RayService").items() if k != "__template"})


def test_a_long_release_name_still_gives_a_name_kuberay_accepts(chart):
    rs = the(render(chart, {}, name="x" * 53), "RayService")
    kuberay.check(rs)
    assert len(rs["metadata"]["name"]) == 40


@pytest.mark.parametrize("release", ["1lc", "lc.prod"])
def test_release_names_kuberay_would_refuse_fail_at_install(chart, release):
    with pytest.raises(helm.HelmError, match="not a DNS-1035 label"):
        render(chart, {}, name=release)
    # The checker agrees with the template: the same name fails rayservice_name.
    good = the(render(chart, {}), "RayService")
    good["metadata"]["name"] = f"{release}-longctx-cluster"
    assert [v for v in kuberay.violations(good) if v.startswith("rayservice_name:")]


def test_the_gpu_profiles_include_those_without_accelerator_type():
    names = {f.stem for f in GPU_PROFILES}
    # The three that failed with "set no accelerator_type", and the ones that set it.
    assert {"h200-1gpu", "h200-1gpu-internlm3", "h200x4-1m", "a100-80g", "h100-80g", "h200-141g"} <= names
    assert "cpu-demo" not in names


def test_the_chart_before_issue_23_fails_the_checker(tmp_path):
    archive = subprocess.run(["git", "-C", str(REPO), "archive", CHART_BEFORE_ISSUE_23, "helm"],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        pytest.skip(f"commit {CHART_BEFORE_ISSUE_23} not in this clone: {archive.stderr.decode()[:200]}")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(tmp_path, filter="data")
    old = helm.Chart.load(str(tmp_path / "helm"))
    found = kuberay.violations(the(render(old, {}), "RayService"))
    assert found and all(v.startswith("worker_idle_timeout:") for v in found), found
    with pytest.raises(Exception, match="set no accelerator_type"):
        render(old, profile_values("h200-1gpu"))


# --- each rule refuses a bad spec -------------------------------------------------------


def _container(name="ray-head", env=None, ports=None):
    return {"name": name, "image": "img", "env": env or [], "ports": ports or [{"name": "serve", "containerPort": 8000}]}


def good_rayservice() -> dict:
    """A RayService of the chart's shape that every rule accepts."""
    worker = {"groupName": "h200-x1", "replicas": 1, "minReplicas": 1, "maxReplicas": 2, "idleTimeoutSeconds": 600,
              "rayStartParams": {"resources": '"{\\"accelerator_type:H200\\": 1}"'},
              "template": {"spec": {"containers": [_container("ray-worker")]}}}
    return {
        "apiVersion": "ray.io/v1", "kind": "RayService",
        "metadata": {"name": "lc-longctx-cluster", "annotations": {}},
        "spec": {
            "upgradeStrategy": {"type": "NewCluster"},
            "rayClusterDeletionDelaySeconds": 7260,
            "serveService": {"metadata": {"name": "lc-api"},
                             "spec": {"ports": [{"name": "serve", "port": 8000}]}},
            "serveConfigV2": "applications: []",
            "rayClusterConfig": {
                "rayVersion": "2.60.0",
                "authOptions": {"mode": "token"},
                "enableInTreeAutoscaling": True,
                "autoscalerOptions": {"version": "v2", "idleTimeoutSeconds": 600},
                "headGroupSpec": {"rayStartParams": {"num-gpus": "0"},
                                  "template": {"spec": {"containers": [_container()]}}},
                "workerGroupSpecs": [worker],
            },
        },
    }


def _cluster(rs):
    return rs["spec"]["rayClusterConfig"]


def _head(rs):
    return _cluster(rs)["headGroupSpec"]


def _head_env(rs, *pairs):
    _head(rs)["template"]["spec"]["containers"][0]["env"] += [{"name": n, "value": v} for n, v in pairs]


def _worker(rs):
    return _cluster(rs)["workerGroupSpecs"][0]


def _incremental(rs, **options):
    rs["spec"]["upgradeStrategy"] = {"type": "NewClusterWithIncrementalUpgrade", "clusterUpgradeOptions": {
        "gatewayClassName": "istio", "maxSurgePercent": 25, "stepSizePercent": 25, "intervalSeconds": 60,
        **options}}


def _ft(rs, **options):
    _cluster(rs)["gcsFaultToleranceOptions"] = {"redisAddress": "redis:6379", **options}


# (rule expected to complain, how to break a good spec)
BAD_SPECS = {
    "rayservice_name": lambda rs: rs["metadata"].update(name="x" * 48),
    "initializing_timeout": lambda rs: rs["metadata"]["annotations"].update({"ray.io/initializing-timeout": "-5m"}),
    "no_k8s_token_auth": lambda rs: _cluster(rs)["authOptions"].update(enableK8sTokenAuth=True),
    "group_containers": lambda rs: _worker(rs)["template"]["spec"].update(containers=[]),
    "group_resources": lambda rs: _head(rs).update(resources={"CPU": "0"}),
    "group_labels": lambda rs: _worker(rs).update(labels={"zone": "not valid!"}),
    "worker_replica_bounds": lambda rs: _worker(rs).update(minReplicas=3),
    "worker_idle_timeout": lambda rs: _cluster(rs)["autoscalerOptions"].pop("version"),
    "worker_priority": lambda rs: (_worker(rs).update(priority=5), _cluster(rs).update(rayVersion="2.55.0")),
    "gcs_ft_configuration": lambda rs: _head_env(rs, ("RAY_REDIS_ADDRESS", "redis:6379")),
    "gcs_ft_backend": lambda rs: _ft(rs, storage={"size": "1Gi"}),
    "suspended_groups": lambda rs: _worker(rs).update(suspend=True),
    "autoscaler_v2_env": lambda rs: _head_env(rs, ("RAY_enable_autoscaler_v2", "1")),
    "autoscaler_v2_restart_policy": lambda rs: _head(rs)["template"]["spec"].update(restartPolicy="Always"),
    "autoscaler_options": lambda rs: _cluster(rs)["autoscalerOptions"].update(idleTimeoutSeconds=-1),
    "auth_options": lambda rs: _cluster(rs).update(rayVersion="2.51.0"),
    "feature_gated_fields": lambda rs: _cluster(rs).update(networkPolicy={"mode": "DenyAll"}),
    "head_service_unnamed": lambda rs: _head(rs).update(headService={"metadata": {"name": "mine"}}),
    "upgrade_strategy_type": lambda rs: rs["spec"].update(upgradeStrategy={"type": "InPlace"}),
    "deletion_delay": lambda rs: rs["spec"].update(rayClusterDeletionDelaySeconds=-1),
    "cluster_upgrade_options": lambda rs: _incremental(rs, gatewayClassName=""),
    "raycluster_upgrade_strategy": lambda rs: _cluster(rs).update(upgradeStrategy={"type": "Recreate"}),
    "worker_group_names": lambda rs: _worker(rs).update(groupName="g" * 64),
    "gcs_ft_redis_address": lambda rs: _ft(rs, redisAddress=""),
    "serve_service_ports": lambda rs: rs["spec"]["serveService"]["spec"]["ports"].append({"name": "http", "port": 80}),
}


def test_the_good_spec_passes_every_rule():
    assert kuberay.violations(good_rayservice()) == []


def test_every_rule_has_a_bad_spec():
    assert set(BAD_SPECS) == {rule.__name__ for rule in kuberay.RULES}


@pytest.mark.parametrize("rule", sorted(BAD_SPECS))
def test_each_rule_refuses_its_bad_spec(rule):
    rs = good_rayservice()
    BAD_SPECS[rule](rs)
    found = kuberay.violations(rs)
    assert any(v.startswith(f"{rule}:") for v in found), found
    with pytest.raises(AssertionError, match=rule):
        kuberay.check(rs)


@pytest.mark.parametrize("breaks, message", [
    (lambda rs: _incremental(rs), None),
    (lambda rs: (_incremental(rs), _cluster(rs).update(enableInTreeAutoscaling=False)), "Autoscaler is required"),
    (lambda rs: (_incremental(rs), rs["spec"]["upgradeStrategy"].pop("clusterUpgradeOptions")), "are required"),
    (lambda rs: _incremental(rs, maxSurgePercent=101), "maxSurgePercent"),
    (lambda rs: _incremental(rs, stepSizePercent=None), "stepSizePercent must be between"),
    (lambda rs: _incremental(rs, stepSizePercent=50), "less than or equal to maxSurgePercent"),
    (lambda rs: _incremental(rs, intervalSeconds=0), "intervalSeconds"),
], ids=["valid", "no-autoscaler", "no-options", "surge", "no-step", "step-over-surge", "interval"])
def test_incremental_upgrade_options_follow_validate_cluster_upgrade_options(breaks, message):
    rs = good_rayservice()
    breaks(rs)
    found = [v for v in kuberay.violations(rs) if v.startswith("cluster_upgrade_options:")]
    assert (found == []) if message is None else (message in found[0]), found


@pytest.mark.parametrize("breaks, message", [
    (lambda rs: _ft(rs), None),
    (lambda rs: (_ft(rs), rs["metadata"]["annotations"].update({"ray.io/ft-enabled": "true"})), "both set"),
    (lambda rs: (_ft(rs), _head(rs)["rayStartParams"].update({"redis-password": "x"})), "redis-password"),
    (lambda rs: (_ft(rs), _head_env(rs, ("REDIS_PASSWORD", "x"))), "REDIS_PASSWORD"),
    (lambda rs: (_ft(rs), rs["metadata"]["annotations"].update(
        {"ray.io/external-storage-namespace": "x"})), "external-storage-namespace"),
    (lambda rs: _head(rs)["rayStartParams"].update({"redis-username": "u"}), "redis username"),
    (lambda rs: _ft(rs, backend="rocksdb", redisAddress=""), "feature gate"),
], ids=["valid", "annotation-too", "password-param", "password-env", "namespace-annotation", "username", "rocksdb"])
def test_gcs_fault_tolerance_rules(breaks, message):
    rs = good_rayservice()
    breaks(rs)
    found = [v for v in kuberay.violations(rs) if v.startswith("gcs_ft_")]
    assert (found == []) if message is None else any(message in v for v in found), found


def test_token_auth_needs_a_parseable_ray_version():
    rs = good_rayservice()
    _cluster(rs)["rayVersion"] = "latest"
    assert any("RayVersion format is invalid" in v for v in kuberay.violations(rs))
    rs = copy.deepcopy(good_rayservice())
    _cluster(rs)["authOptions"] = {"mode": "disabled", "enableK8sTokenAuth": True}
    assert any("not set to 'token'" in v for v in kuberay.violations(rs))
