"""The Helm chart, rendered by Helm's own Go engine (helm-python-sdk).

Every values file (defaults and helm/ci/*.yaml) must render; the core kinds
must validate against Kubernetes' schemas, the RayService against KubeRay's
CRD, and the serveConfigV2 must load with the project's own config loader.
"""

from __future__ import annotations

import importlib
import json

import jsonschema
import pytest
import yaml

from tests.helm.rendering import CASES, CHART, CI_FILES, K8S_VERSION, REPO, app_profile, helm, kinds, render, the

kubernetes_validate = pytest.importorskip("kubernetes_validate")

from cluster.config import load_config  # noqa: E402
from cluster.planner import failures, plan_cluster, worker_shapes  # noqa: E402
from deployments.serve_options import without_serve_options  # noqa: E402

CRD = REPO.parent / "shared" / "reference" / "kuberay-v1.7.0" / "ray.io_rayservices.yaml"
CORE_GROUPS = ("v1", "apps/v1", "policy/v1", "networking.k8s.io/v1")
# Which deployments/ profile each values file deploys.
PROFILE_OF = {"default": "a100-80g", "a100-80g": "a100-80g", "h100-80g": "h100-80g",
              "h200-141g": "h200-141g", "ha": "a100-80g"}


def serve_config(rayservice) -> dict:
    return yaml.safe_load(rayservice["spec"]["serveConfigV2"])


def ray_containers(rayservice):
    cluster = rayservice["spec"]["rayClusterConfig"]
    yield cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    for group in cluster["workerGroupSpecs"]:
        yield group["template"]["spec"]["containers"][0]


def test_every_ci_profile_is_covered():
    assert {f.stem for f in CI_FILES} >= {"a100-80g", "h100-80g", "h200-141g"}
    assert set(PROFILE_OF) >= {"default", *(f.stem for f in CI_FILES)}


# --- validation against schemas -------------------------------------------------


@pytest.mark.parametrize("values, case", CASES)
def test_core_kinds_validate_against_kubernetes(values, case, rendered):
    docs = rendered[case]
    core = [d for d in docs if d["apiVersion"] in CORE_GROUPS]
    assert {"Secret", "PodDisruptionBudget", "Pod"} & {d["kind"] for d in core}
    for doc in core:
        clean = {k: v for k, v in doc.items() if k != "__template"}
        kubernetes_validate.validate(clean, K8S_VERSION, strict=True)


def _strict(schema):
    """The CRD schema with unknown fields rejected: the API server would prune
    them silently, so a misspelt field would just vanish."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if (schema.get("type") == "object" and "properties" in schema
                and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@pytest.fixture(scope="module")
def rayservice_schema():
    if not CRD.is_file():
        pytest.skip(f"KubeRay CRD copy absent at {CRD} (only CI and developers have ../shared)")
    crd = yaml.safe_load(CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return _strict(version["schema"]["openAPIV3Schema"])


@pytest.mark.parametrize("values, case", CASES)
def test_rayservice_validates_against_kuberay_crd(values, case, rendered, rayservice_schema):
    rayservice = the(rendered[case], "RayService")
    doc = {k: v for k, v in rayservice.items() if k != "__template"}
    jsonschema.validate(doc, rayservice_schema)


def test_strict_crd_schema_catches_a_misspelt_field(rendered, rayservice_schema):
    doc = {k: v for k, v in the(rendered["default"], "RayService").items() if k != "__template"}
    doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplica"] = 3
    with pytest.raises(jsonschema.ValidationError, match="maxReplica"):
        jsonschema.validate(doc, rayservice_schema)


def test_values_schema_rejects_profile_typos(chart):
    with pytest.raises(helm.HelmValuesError, match="max_model_length"):
        chart.render({"cluster": {"pools": [{"name": "p", "model": "m", "band": [0, 1],
                                             "engine": {"max_model_length": 1}}]}},
                     name="lc", namespace="llm")
    with pytest.raises(helm.HelmValuesError, match="source"):
        chart.render({"weights": {"source": "s3"}}, name="lc", namespace="llm")


def test_lint_is_clean():
    report = helm.lint(str(CHART), strict=True, kube_version="v1.30.0")
    assert report["errors"] == []
    assert not [m for m in report["messages"] if m["severity"] >= 2], report["messages"]


# --- the serve config is the profile ---------------------------------------------


@pytest.mark.parametrize("values, case", CASES)
def test_serve_config_is_the_profile_and_loads(values, case, rendered):
    config = serve_config(the(rendered[case], "RayService"))
    (app,) = config["applications"]
    module_name, _, attr = app["import_path"].partition(":")
    assert (module_name, attr) == ("deployments.app", "build_app")
    # Import without starting Ray: building the app needs a cluster, naming it not.
    assert callable(getattr(importlib.import_module(module_name), attr))
    profile = REPO / "deployments" / f"{PROFILE_OF[case]}.yaml"
    # Less each pool's replicas and drain timeout: deployment options (tests/helm/test_scaling.py).
    args = json.loads(json.dumps(app["args"]["cluster"]))
    raw = yaml.safe_load(profile.read_text())
    shape_resources = {}
    for pool, raw_pool in zip(args["pools"], raw["pools"]):
        # The chart's one addition to a pool: its worker group's resource (tests/helm/test_shapes.py).
        resources = pool.pop("worker_resources")
        (own,) = [k for k in resources if k.startswith("longctx-group-")]
        shape_resources[pool["name"]] = dict(resources)
        assert resources.pop(own) == 0.001
        assert resources == raw_pool.get("worker_resources", {"GPU": 1})
        if "worker_resources" in raw_pool:
            pool["worker_resources"] = resources
    assert args == without_serve_options(raw)
    cluster = app_profile(app)
    # The chart's additions: the app checks the API keys it puts on the pods,
    # and keeps documents in the chart's Redis (tests/helm/test_documents_store.py).
    api_keys = values.get("auth", {}).get("enabled", True)
    assert cluster.ingress.auth.enabled is api_keys
    store = [o for o in app["args"]["overrides"] if o.startswith("documents.store.")]
    keys = ["ingress.auth.enabled=true", "ingress.auth.keys_file=/etc/longctx/api-keys/keys"]  # test_api_keys.py
    expected = load_config(profile, (keys if api_keys else []) + store, env={})
    for pool in expected.pools:
        pool.worker_resources = shape_resources[pool.name]
    assert cluster == expected
    assert config["http_options"]["host"] == "0.0.0.0"
    assert config["http_options"]["request_timeout_s"] == cluster.ingress.request_timeout_s


@pytest.mark.parametrize("values, case", CASES)
def test_deployed_profile_passes_the_planner(values, case, rendered):
    args = serve_config(the(rendered[case], "RayService"))["applications"][0]["args"]
    plans = plan_cluster(load_config(args["cluster"], env={}))
    assert failures(plans) == []


def test_overrides_and_cluster_yaml_pass_through(chart):
    profile = (REPO / "deployments" / "h200-141g.yaml").read_text()
    docs = render(chart, {"clusterYaml": profile, "overrides": ["pools.il25-short.max_ongoing_requests=3"]})
    args = serve_config(the(docs, "RayService"))["applications"][0]["args"]
    # The chart's own first (API keys, then the documents' Redis), the user's last, so they win.
    assert args["overrides"][:2] == ["ingress.auth.enabled=true", "ingress.auth.keys_file=/etc/longctx/api-keys/keys"]
    assert args["overrides"][-1] == "pools.il25-short.max_ongoing_requests=3"
    assert all(o.startswith("documents.store.") for o in args["overrides"][2:-1])
    cluster = load_config(args["cluster"], args["overrides"], env={})
    assert cluster.pool("il25-short").max_ongoing_requests == 3
    assert cluster.pool("il25-short").accelerator_type == "H200"


# --- worker groups: derived from pools, nothing more ---------------------------------


@pytest.mark.parametrize("values, case", CASES)
def test_worker_groups_match_the_pools_gpu_shapes(values, case, rendered):
    rayservice = the(rendered[case], "RayService")
    spec = rayservice["spec"]["rayClusterConfig"]
    app = serve_config(rayservice)["applications"][0]
    expected = {
        (s.accelerator, s.devices_per_pod): (s.min_replicas, s.max_replicas, s.replicas)
        for s in worker_shapes(app_profile(app))
    }
    got = {}
    for group in spec["workerGroupSpecs"]:
        pod = group["template"]["spec"]
        limits = pod["containers"][0]["resources"]["limits"]
        gpus = int(limits["nvidia.com/gpu"])
        assert pod["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == limits["nvidia.com/gpu"]
        accelerator = group["template"]["metadata"]["labels"]["longctx.io/accelerator"]
        # The pools request accelerator_type:<type> and their group's own resource
        # (tests/helm/test_shapes.py); the node must advertise both.
        resources = json.loads(json.loads(group["rayStartParams"]["resources"]))
        assert resources == {f"accelerator_type:{accelerator}": 1, f"longctx-group-{group['groupName']}": 1}
        assert pod["nodeSelector"]["nvidia.com/gpu.product"]
        assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
        shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
        assert shm["emptyDir"]["medium"] == "Memory"
        got[(accelerator, gpus)] = (group["minReplicas"], group["maxReplicas"], group["replicas"])
    assert got == expected
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-gpus"] == "0"
    head_resources = head["template"]["spec"]["containers"][0]["resources"]
    assert "nvidia.com/gpu" not in json.dumps(head_resources)
    assert head["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]


def test_a100_profile_has_a_4_gpu_group_for_the_1m_pool(rendered):
    groups = the(rendered["a100-80g"], "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    by_name = {g["groupName"]: g for g in groups}
    assert set(by_name) == {"a100-80g-x1", "a100-80g-x2", "a100-80g-x4"}
    x4 = by_name["a100-80g-x4"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert x4["nvidia.com/gpu"] == "4"
    h200 = the(rendered["h200-141g"], "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert {g["groupName"] for g in h200} == {"h200-x1", "h200-x2"}


def test_pool_edit_changes_the_worker_groups(chart):
    profile = yaml.safe_load((REPO / "deployments" / "a100-80g.yaml").read_text())
    profile["pools"][0]["replicas"] = {"min": 0, "max": 5}
    docs = render(chart, {"clusterYaml": yaml.safe_dump(profile)})
    groups = {g["groupName"]: g for g in
              the(docs, "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"]}
    # il25-short (0..5), il3-short (1..4) and il3-long (1..2) share the 1-GPU shape.
    assert (groups["a100-80g-x1"]["minReplicas"], groups["a100-80g-x1"]["maxReplicas"]) == (2, 11)


# --- weights, auth, access -------------------------------------------------------


def test_weights_from_pvc_are_mounted_read_only(rendered):
    rayservice = the(rendered["default"], "RayService")
    for pod in [rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"],
                *(g["template"]["spec"] for g in
                  rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"])]:
        volume = next(v for v in pod["volumes"] if v["name"] == "models")
        assert volume["persistentVolumeClaim"] == {"claimName": "longctx-models", "readOnly": True}
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "models")
        assert mount["mountPath"] == "/models" and mount["readOnly"] is True


def test_model_path_outside_the_weights_volume_fails(chart):
    profile = yaml.safe_load((REPO / "deployments" / "a100-80g.yaml").read_text())
    profile["models"]["internlm3-8b-instruct"]["path"] = "/data/il3"
    with pytest.raises(helm.HelmError, match="not under weights.mountPath"):
        chart.render({"clusterYaml": yaml.safe_dump(profile)}, name="lc", namespace="llm")


# API keys (the Secret, its mount, rotation): tests/helm/test_api_keys.py.


def test_api_service_and_ingress_agree(rendered):
    # The HTTPRoute (test_gateway_api.py) and the helm test pod (test_smoke_hook.py) too.
    docs = rendered["a100-80g"]
    service = the(docs, "RayService")["spec"]["serveService"]
    name, port = service["metadata"]["name"], service["spec"]["ports"][0]["port"]
    ingress = the(docs, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": name, "port": {"number": port}}


def test_pdbs_select_their_worker_group_pods(rendered):
    docs = rendered["a100-80g"]
    groups = the(docs, "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    pdbs = kinds(docs, "PodDisruptionBudget")
    assert len(pdbs) == len(groups) + 1  # + the head's, enabled in this file
    for group in groups:
        labels = group["template"]["metadata"]["labels"]
        matching = [p for p in pdbs if all(labels.get(k) == v for k, v in
                                           p["spec"]["selector"]["matchLabels"].items())]
        assert len(matching) == 1 and matching[0]["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("values", [
    pytest.param("profile", id="in the profile"),
    pytest.param("override", id="as an override"),
])
def test_direct_ingress_is_refused_with_the_reason(chart, values):
    profile = yaml.safe_load((REPO / "deployments" / "a100-80g.yaml").read_text())
    if values == "profile":
        profile["ingress"]["direct_ingress"] = True
        chosen = {"clusterYaml": yaml.safe_dump(profile)}
    else:
        chosen = {"overrides": ["ingress.direct_ingress=true"]}
    with pytest.raises(helm.HelmError, match="direct_ingress is not supported by the chart"):
        chart.render(chosen, name="lc", namespace="llm")
    # Switched off explicitly, it renders.
    assert chart.render({"overrides": ["ingress.direct_ingress=false"]}, name="lc", namespace="llm")
