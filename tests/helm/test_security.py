"""The chart's Ray control-plane security: token auth and the NetworkPolicy.

Rendered by Helm's Go engine like test_chart.py. The NetworkPolicy is checked
by evaluating it the way Kubernetes does (selectors, peers, ports) for the
pods the chart creates and for the callers around them, so the assertions are
about who reaches which port, not about the YAML's shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jsonschema
import pytest
import yaml

from tests.helm.rendering import CASES, K8S_VERSION, REPO, helm, kinds, render, the
from tests.helm.test_chart import (  # noqa: F401  (rayservice_schema: a fixture)
    kubernetes_validate,
    ray_containers,
    rayservice_schema,
)

NAMESPACE = "llm"
API_PORT = 8000
DASHBOARD, GCS, CLIENT, METRICS = 8265, 6379, 10001, 8080
# A port Ray picks at random (raylet, object manager, worker).
RANDOM_RAY_PORT = 12345


# --- a NetworkPolicy evaluator (Kubernetes semantics, ingress only) ------------------


def selects(selector: dict, labels: dict) -> bool:
    """LabelSelector semantics: {} selects everything."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


@dataclass(frozen=True)
class Pod:
    labels: dict
    namespace: str = NAMESPACE
    namespace_labels: dict = field(default_factory=dict)

    @property
    def ns_labels(self) -> dict:
        # The API server sets this label on every namespace.
        return {"kubernetes.io/metadata.name": self.namespace, **self.namespace_labels}


def peer_admits(peer: dict, source: Pod, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        return False  # the callers below are pods, addressed by labels
    if "namespaceSelector" in peer:
        in_namespace = selects(peer["namespaceSelector"], source.ns_labels)
    else:
        in_namespace = source.namespace == policy_namespace
    return in_namespace and selects(peer.get("podSelector", {}), source.labels)


def admits(policies: list[dict], source: Pod, target: Pod, port: int) -> bool:
    """Whether a TCP connection from source to target:port is allowed."""
    selecting = [p for p in policies if p["metadata"].get("namespace", NAMESPACE) == target.namespace
                 and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
                 and selects(p["spec"]["podSelector"], target.labels)]
    if not selecting:
        return True  # a pod no policy selects is not isolated
    for policy in selecting:
        for rule in policy["spec"].get("ingress") or []:
            ports = rule.get("ports")
            port_ok = not ports or any(p.get("port") == port and p.get("protocol", "TCP") == "TCP"
                                       for p in ports)
            peers = rule.get("from")
            peer_ok = not peers or any(peer_admits(p, source, NAMESPACE) for p in peers)
            if port_ok and peer_ok:
                return True
    return False


def test_evaluator_follows_kubernetes_semantics():
    policy = {"metadata": {}, "spec": {
        "podSelector": {"matchLabels": {"app": "db"}},
        "policyTypes": ["Ingress"],
        "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 5432}]},
            {"from": [{"namespaceSelector": {"matchLabels": {"team": "ops"}},
                       "podSelector": {"matchLabels": {"app": "backup"}}}]},
        ]}}
    db = Pod({"app": "db"})
    assert admits([policy], Pod({"app": "web"}), db, 5432)
    assert not admits([policy], Pod({"app": "web"}), db, 22)
    assert not admits([policy], Pod({"app": "web"}, namespace="other"), db, 5432)
    assert admits([policy], Pod({"app": "backup"}, "ops-ns", {"team": "ops"}), db, 22)
    assert not admits([policy], Pod({"app": "web"}, "ops-ns", {"team": "ops"}), db, 22)
    assert admits([policy], Pod({}), Pod({"app": "web"}), 80)  # not selected: not isolated


# --- the chart's pods and callers ------------------------------------------------------


def ray_pods(docs) -> dict[str, Pod]:
    """{group: pod} for the head and every worker group, labels as the chart sets them."""
    spec = the(docs, "RayService")["spec"]["rayClusterConfig"]
    pods = {"head": Pod(spec["headGroupSpec"]["template"]["metadata"]["labels"])}
    for group in spec["workerGroupSpecs"]:
        pods[group["groupName"]] = Pod(group["template"]["metadata"]["labels"])
    return pods


def policies(docs) -> list[dict]:
    return [{k: v for k, v in d.items() if k != "__template"} for d in kinds(docs, "NetworkPolicy")]


def ray_policy(docs) -> dict:
    """The Ray pods' policy (the other one guards the documents' Redis, test_documents_store.py)."""
    (policy,) = [p for p in policies(docs) if p["metadata"]["name"].endswith("-ray")]
    return policy


OPERATOR = Pod({"app.kubernetes.io/name": "kuberay-operator", "app.kubernetes.io/instance": "kuberay-operator"},
               namespace="kuberay-system")
INGRESS_CONTROLLER = Pod({"app.kubernetes.io/name": "ingress-nginx"}, namespace="ingress-nginx")
PROMETHEUS = Pod({"app.kubernetes.io/name": "prometheus"}, namespace="monitoring")
# What an attacker gets by default: a pod in the same namespace, or anywhere else.
NEIGHBOUR = Pod({"app": "something-else"})
ELSEWHERE = Pod({"app": "something-else"}, namespace="team-b")
OTHER_RELEASE = Pod({"app.kubernetes.io/name": "longctx-cluster", "app.kubernetes.io/instance": "other",
                     "longctx.io/component": "worker"})


def hook_pod(docs) -> Pod:
    return Pod(the(docs, "Pod")["metadata"]["labels"])


# --- token auth ------------------------------------------------------------------------


def _ray_cluster_spec(docs) -> dict:
    return the(docs, "RayService")["spec"]["rayClusterConfig"]


@pytest.mark.parametrize("values, case", CASES)
def test_ray_token_auth_is_on_in_every_values_file(values, case, rendered):
    docs = rendered[case]
    assert _ray_cluster_spec(docs)["authOptions"] == {"mode": "token"}
    # KubeRay injects RAY_AUTH_MODE/RAY_AUTH_TOKEN only where they are unset.
    for container in ray_containers(the(docs, "RayService")):
        assert not [e for e in container.get("env", []) if e["name"].startswith("RAY_AUTH_")]


def _clean(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "__template"}


@pytest.mark.parametrize("ray_auth, expected", [
    pytest.param({}, {"mode": "token"}, id="default"),
    pytest.param({"secretName": "ray-token"}, {"mode": "token", "secretName": "ray-token"}, id="secretName"),
    # A Secret name means nothing without token mode; KubeRay would ignore it.
    pytest.param({"mode": "disabled", "secretName": "ray-token"}, {"mode": "disabled"}, id="disabled"),
])
def test_auth_options_render_and_validate_against_the_crd(chart, rayservice_schema, ray_auth, expected):
    docs = render(chart, {"rayAuth": ray_auth})
    rayservice = the(docs, "RayService")
    assert rayservice["spec"]["rayClusterConfig"]["authOptions"] == expected
    jsonschema.validate(_clean(rayservice), rayservice_schema)


def test_strict_crd_schema_rejects_a_misspelt_auth_field(chart, rayservice_schema):
    doc = _clean(the(render(chart, {}), "RayService"))
    doc["spec"]["rayClusterConfig"]["authOptions"]["secret"] = "x"
    with pytest.raises(jsonschema.ValidationError, match="secret"):
        jsonschema.validate(doc, rayservice_schema)
    doc["spec"]["rayClusterConfig"]["authOptions"] = {"mode": "on"}
    with pytest.raises(jsonschema.ValidationError, match="on"):
        jsonschema.validate(doc, rayservice_schema)


def test_notes_show_the_token_or_warn(chart):
    def notes(values):
        return chart.render(values, name="lc", namespace=NAMESPACE)["longctx-cluster/templates/NOTES.txt"]

    on = notes({})
    assert "jsonpath='{.data.auth_token}'" in on and "get secret $RC" in on
    assert "rayClusterName" in on and "WARNING" not in on
    assert "get secret ray-token " in notes({"rayAuth": {"secretName": "ray-token"}})
    off = notes({"rayAuth": {"mode": "disabled"}, "networkPolicy": {"enabled": False}})
    assert "WARNING: rayAuth.mode is disabled" in off
    assert "WARNING: networkPolicy.enabled is false" in off
    assert "auth_token" not in off


def test_bad_auth_settings_fail_at_install(chart):
    with pytest.raises(helm.HelmValuesError, match="mode"):
        chart.render({"rayAuth": {"mode": "off"}}, name="lc", namespace=NAMESPACE)
    with pytest.raises(helm.HelmError, match="needs Ray >= 2.52.0"):
        chart.render({"rayVersion": "2.50.1"}, name="lc", namespace=NAMESPACE)
    # Without token mode an old Ray is fine.
    render(chart, {"rayVersion": "2.50.1", "rayAuth": {"mode": "disabled"}})
    with pytest.raises(helm.HelmError, match="RAY_AUTH_MODE in head.env"):
        chart.render({"head": {"env": [{"name": "RAY_AUTH_MODE", "value": "disabled"}]}},
                     name="lc", namespace=NAMESPACE)


# --- the NetworkPolicy -------------------------------------------------------------------


@pytest.mark.parametrize("values, case", CASES)
def test_network_policy_isolates_every_ray_pod_and_nothing_else(values, case, rendered):
    docs = rendered[case]
    policy = ray_policy(docs)
    kubernetes_validate.validate(policy, K8S_VERSION, strict=True)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    pods = ray_pods(docs)
    assert len(pods) >= 2
    for pod in pods.values():
        assert selects(policy["spec"]["podSelector"], pod.labels)
    # The test hook and other releases' pods are not isolated by this policy.
    assert not selects(policy["spec"]["podSelector"], hook_pod(docs).labels)
    assert not selects(policy["spec"]["podSelector"], OTHER_RELEASE.labels)


@pytest.mark.parametrize("values, case", CASES)
def test_ray_ports_are_reachable_only_from_this_releases_ray_pods(values, case, rendered):
    docs = rendered[case]
    pols = policies(docs)
    pods = ray_pods(docs)
    head = pods["head"]
    strangers = [NEIGHBOUR, ELSEWHERE, OTHER_RELEASE, hook_pod(docs), INGRESS_CONTROLLER, PROMETHEUS]
    for target in pods.values():
        for source in pods.values():
            for port in (GCS, DASHBOARD, CLIENT, METRICS, API_PORT, RANDOM_RAY_PORT):
                assert admits(pols, source, target, port)
        for port in (GCS, CLIENT, RANDOM_RAY_PORT):
            for source in [*strangers, OPERATOR]:
                assert not admits(pols, source, target, port), (source, port)
        for source in strangers:
            assert not admits(pols, source, target, DASHBOARD), source
    # KubeRay deploys the serve config through the head's dashboard and checks its proxy.
    assert admits(pols, OPERATOR, head, DASHBOARD) and admits(pols, OPERATOR, head, API_PORT)
    assert not admits(pols, OPERATOR, head, METRICS)


def test_api_and_metrics_ports_by_default(rendered):
    docs = rendered["default"]
    pols = policies(docs)
    for target in ray_pods(docs).values():
        assert admits(pols, INGRESS_CONTROLLER, target, API_PORT)
        assert admits(pols, hook_pod(docs), target, API_PORT)
        assert not admits(pols, NEIGHBOUR, target, API_PORT)
        assert not admits(pols, ELSEWHERE, target, API_PORT)
        assert admits(pols, PROMETHEUS, target, METRICS)
        assert not admits(pols, PROMETHEUS, target, API_PORT)
        assert not admits(pols, INGRESS_CONTROLLER, target, METRICS)
        assert not admits(pols, NEIGHBOUR, target, METRICS)


def test_policy_ports_are_the_ports_the_containers_declare(rendered):
    rayservice = the(rendered["default"], "RayService")
    head, *workers = ray_containers(rayservice)
    head_ports = {p["name"]: p["containerPort"] for p in head["ports"]}
    assert (head_ports["dashboard"], head_ports["serve"], head_ports["metrics"]) == (DASHBOARD, API_PORT, METRICS)
    for worker in workers:
        ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
        assert (ports["serve"], ports["metrics"]) == (API_PORT, METRICS)
    policy = ray_policy(rendered["default"])
    opened = {p["port"] for rule in policy["spec"]["ingress"] for p in rule.get("ports", [])}
    assert opened == {DASHBOARD, API_PORT, METRICS}


def test_api_port_follows_the_profile(chart):
    profile = yaml.safe_load((REPO / "deployments" / "a100-80g.yaml").read_text())
    profile["ingress"]["port"] = 9000
    docs = render(chart, {"clusterYaml": yaml.safe_dump(profile)})
    pols, head = policies(docs), ray_pods(docs)["head"]
    assert admits(pols, INGRESS_CONTROLLER, head, 9000)
    assert not admits(pols, INGRESS_CONTROLLER, head, API_PORT)
    assert admits(pols, OPERATOR, head, 9000)


def test_load_balancer_opens_the_api_port_to_all_and_only_it(rendered, chart):
    # ci/h100-80g.yaml: service.type LoadBalancer, allowAll auto.
    docs = rendered["h100-80g"]
    pols, head = policies(docs), ray_pods(docs)["head"]
    assert admits(pols, ELSEWHERE, head, API_PORT)
    assert not admits(pols, ELSEWHERE, head, DASHBOARD)
    assert not admits(pols, ELSEWHERE, head, METRICS)
    closed = render(chart, {"service": {"type": "LoadBalancer"}, "networkPolicy": {"api": {"allowAll": False}}})
    assert not admits(policies(closed), ELSEWHERE, ray_pods(closed)["head"], API_PORT)
    assert admits(policies(closed), INGRESS_CONTROLLER, ray_pods(closed)["head"], API_PORT)
    everyone = render(chart, {"networkPolicy": {"api": {"allowAll": True}}})
    assert admits(policies(everyone), NEIGHBOUR, ray_pods(everyone)["head"], API_PORT)
    assert not admits(policies(everyone), NEIGHBOUR, ray_pods(everyone)["head"], GCS)


def test_ingress_and_monitoring_namespaces_are_configurable(chart):
    traefik = Pod({"app": "traefik"}, namespace="edge", namespace_labels={"role": "ingress"})
    grafana_agent = Pod({"app": "agent"}, namespace="observability")
    docs = render(chart, {"networkPolicy": {
        "api": {"from": [{"namespaceSelector": {"matchLabels": {"role": "ingress"}}}]},
        "metrics": {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}},
                              "podSelector": {"matchLabels": {"app": "agent"}}}]},
        "operator": {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kuberay-system"}},
                               "podSelector": {"matchLabels": {"app.kubernetes.io/name": "kuberay-operator"}}}]},
    }})
    policy = ray_policy(docs)
    kubernetes_validate.validate(policy, K8S_VERSION, strict=True)
    pols, head = [policy], ray_pods(docs)["head"]
    assert admits(pols, traefik, head, API_PORT)
    assert not admits(pols, INGRESS_CONTROLLER, head, API_PORT)
    assert admits(pols, hook_pod(docs), head, API_PORT)
    assert admits(pols, grafana_agent, head, METRICS)
    assert not admits(pols, PROMETHEUS, head, METRICS)
    assert not admits(pols, Pod({"app": "other"}, namespace="observability"), head, METRICS)
    assert admits(pols, OPERATOR, head, DASHBOARD)
    assert not admits(pols, Pod(OPERATOR.labels, namespace="team-b"), head, DASHBOARD)


def test_extra_rules_are_added_and_the_policy_can_be_turned_off(chart):
    bastion = Pod({"app": "bastion"}, namespace="ops")
    rule = {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}}}],
            "ports": [{"protocol": "TCP", "port": DASHBOARD}]}
    docs = render(chart, {"networkPolicy": {"extraIngress": [rule]}})
    policy = ray_policy(docs)
    kubernetes_validate.validate(policy, K8S_VERSION, strict=True)
    head = ray_pods(docs)["head"]
    assert admits([policy], bastion, head, DASHBOARD) and not admits([policy], bastion, head, GCS)
    assert kinds(render(chart, {"networkPolicy": {"enabled": False}}), "NetworkPolicy") == []
    with pytest.raises(helm.HelmValuesError, match="allowAll"):
        chart.render({"networkPolicy": {"api": {"allowAll": "yes"}}}, name="lc", namespace=NAMESPACE)
