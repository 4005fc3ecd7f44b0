"""The chart's Gateway API HTTPRoute (httpRoute.*), rendered by Helm's Go engine.

Checked as the API server would admit it: the HTTPRoute CRD's v1 OpenAPI schema (Gateway API
v1.6.1, vendored beside this file, strict about unknown fields as test_chart.py is for the
RayService) and its CEL rules (ported in gateway_api_rules.py); then that it reaches the Service
the Ingress uses, with timeouts from the profile's longest request, and that the NetworkPolicy
lets the gateway's namespace in to the API port and nowhere else.
"""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from tests.helm import gateway_api_rules as cel
from tests.helm.rendering import PROFILE_CASES, REPO, helm, kinds, profile_values, render, the
from tests.helm.test_chart import _strict
from tests.helm.test_security import API_PORT, DASHBOARD, GCS, RANDOM_RAY_PORT, Pod, admits, policies, ray_pods

SCHEMA_FILE = REPO / "tests" / "helm" / "gateway_api_httproute_v1.6.1.schema.json"
GATEWAY = {"name": "public", "namespace": "gateways", "sectionName": "https"}
ROUTE = {"httpRoute": {"enabled": True, "parentRefs": [GATEWAY]}}
# Envoy Gateway's proxies, in the gateway's namespace.
GATEWAY_PROXY = Pod({"app.kubernetes.io/name": "envoy"}, namespace="gateways")


def with_route(values: dict | None = None, **route) -> dict:
    merged = copy.deepcopy(values or {})
    merged["httpRoute"] = {**copy.deepcopy(ROUTE["httpRoute"]), **route}
    return merged


def route_of(docs) -> dict:
    return {k: v for k, v in the(docs, "HTTPRoute").items() if k != "__template"}


@pytest.fixture(scope="module")
def httproute_schema() -> dict:
    return _strict(json.loads(SCHEMA_FILE.read_text()))


def admitted(route: dict, schema: dict) -> list[str]:
    """Why the API server would refuse the route: its schema's errors, else its CEL rules' (which
    run on an object of the schema's shape)."""
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(route)]
    return errors or cel.violations(route)


# --- admitted by the CRD ----------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILE_CASES)
def test_every_profiles_route_is_admitted(chart, httproute_schema, profile):
    route = route_of(render(chart, with_route(profile_values(profile))))
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert admitted(route, httproute_schema) == []


@pytest.mark.parametrize("route", [
    pytest.param({"parentRefs": [{"name": "public"}]}, id="parent in the release's namespace"),
    pytest.param({"parentRefs": [{"name": "public", "namespace": "gw", "sectionName": "https"},
                                 {"name": "public", "namespace": "gw", "sectionName": "http"}]}, id="two listeners"),
    pytest.param({"parentRefs": [{"name": "public", "port": 443}], "hostnames": []}, id="port, no hostnames"),
    pytest.param({"path": "/v1", "hostnames": ["*.example.com", "llm.example.com"]}, id="path and wildcard"),
    pytest.param({"timeouts": {"requestSeconds": 100000, "backendRequestSeconds": 90061}}, id="long timeouts"),
])
def test_route_variants_are_admitted(chart, httproute_schema, route):
    assert admitted(route_of(render(chart, with_route(**route))), httproute_schema) == []


def test_the_checks_catch_what_the_api_server_refuses(chart, httproute_schema):
    route = route_of(render(chart, ROUTE))
    typo = copy.deepcopy(route)
    typo["spec"]["rules"][0]["timeout"] = typo["spec"]["rules"][0].pop("timeouts")
    assert any("timeout" in e for e in admitted(typo, httproute_schema))
    seconds = copy.deepcopy(route)  # Gateway API durations have at most 5 digits per unit
    seconds["spec"]["rules"][0]["timeouts"]["request"] = "172800s"
    assert any("does not match" in e for e in admitted(seconds, httproute_schema))
    longer = copy.deepcopy(route)
    longer["spec"]["rules"][0]["timeouts"] = {"request": "1h", "backendRequest": "1h1s"}
    assert admitted(longer, httproute_schema) == ["backendRequest timeout cannot be longer than request timeout"]
    twice = copy.deepcopy(route)
    twice["spec"]["parentRefs"] = [{"name": "public"}, {"name": "public"}]
    assert "sectionName must be unique when parentRefs includes 2 or more references to the same parent" \
        in admitted(twice, httproute_schema)
    dotted = copy.deepcopy(route)
    dotted["spec"]["rules"][0]["matches"][0]["path"]["value"] = "/v1/../admin"
    assert admitted(dotted, httproute_schema) == ["must not contain '/../' when type one of ['Exact', 'PathPrefix']"]


def _cel_rules(schema, path=""):
    """(field path, message, CEL text) of every rule in the schema."""
    if isinstance(schema, dict):
        for rule in schema.get("x-kubernetes-validations", []):
            yield path, rule["message"], rule["rule"]
        for key, value in (schema.get("properties") or {}).items():
            yield from _cel_rules(value, f"{path}.{key}")
        if "items" in schema:
            yield from _cel_rules(schema["items"], f"{path}[]")


def test_every_cel_rule_is_ported_or_about_a_field_the_chart_never_writes(chart):
    schema = json.loads(SCHEMA_FILE.read_text())
    unported = [(path, message) for path, message, rule in _cel_rules(schema) if message not in cel.RULES
                # A rule on such a field, or one that holds whenever the field is absent.
                and not any(f".{field}" in path or f".{field}" in rule for field in cel.UNRENDERED_FIELDS)]
    assert unported == []
    assert {message for _, message, _ in _cel_rules(schema)} >= set(cel.RULES)  # no port of a rule that is gone
    for rule in route_of(render(chart, ROUTE))["spec"]["rules"]:
        assert not set(cel.UNRENDERED_FIELDS) & (set(rule) | {k for ref in rule["backendRefs"] for k in ref})


def test_durations_read_as_cel_reads_them():
    assert cel.duration_ms("2h1m") == 7_260_000 and cel.duration_ms("1s500ms") == 1500
    with pytest.raises(ValueError):
        cel.duration_ms("7260")


# --- where it goes, and for how long ------------------------------------------------------


def test_the_route_reaches_the_service_the_ingress_uses(chart):
    docs = render(chart, with_route({"ingress": {"enabled": True}}, hostnames=["llm.example.com"], path="/v1"))
    spec = route_of(docs)["spec"]
    assert spec["parentRefs"] == [GATEWAY] and spec["hostnames"] == ["llm.example.com"]
    (rule,) = spec["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/v1"}}]
    ingress_backend = the(docs, "Ingress")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    serve_service = the(docs, "RayService")["spec"]["serveService"]
    (backend,) = rule["backendRefs"]
    assert backend == {"kind": "Service", "name": ingress_backend["name"], "port": ingress_backend["port"]["number"]}
    assert (backend["name"], backend["port"]) == (serve_service["metadata"]["name"],
                                                  serve_service["spec"]["ports"][0]["port"])


def _timeouts_s(docs) -> tuple[float, float]:
    timeouts = route_of(docs)["spec"]["rules"][0]["timeouts"]
    return cel.duration_ms(timeouts["request"]) / 1000, cel.duration_ms(timeouts["backendRequest"]) / 1000


@pytest.mark.parametrize("profile", PROFILE_CASES)
def test_timeouts_are_the_longest_request_plus_the_margin(chart, profile):
    # The pods' grace period is the same longest request + drain.marginSeconds (60).
    docs = render(chart, with_route(profile_values(profile)))
    head = the(docs, "RayService")["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    longest = head["terminationGracePeriodSeconds"] - 60
    assert _timeouts_s(docs) == (longest + 30, longest + 30)


def test_timeouts_follow_the_profile_and_the_values(chart):
    longer = render(chart, with_route({"cluster": {"ingress": {"request_timeout_s": 9000}}}))
    assert _timeouts_s(longer) == (9030, 9030)
    set_ = render(chart, with_route(timeouts={"requestSeconds": 7261, "backendRequestSeconds": 7200}))
    route = route_of(set_)["spec"]["rules"][0]["timeouts"]
    assert route == {"request": "2h1m1s", "backendRequest": "2h"}
    none = render(chart, with_route(timeouts={"marginSeconds": 0}))
    assert _timeouts_s(none) == (7200, 7200)


@pytest.mark.parametrize("route, message", [
    pytest.param({"timeouts": {"requestSeconds": 600}}, "requestSeconds 600 is shorter than the profile's "
                 "longest request \\(7200 s\\)", id="request too short"),
    pytest.param({"timeouts": {"backendRequestSeconds": 7300, "requestSeconds": 7250}},
                 "backendRequestSeconds 7300 is longer than requestSeconds 7250", id="backend longer"),
    pytest.param({"parentRefs": []}, "httpRoute.enabled needs httpRoute.parentRefs", id="no gateway"),
])
def test_bad_routes_fail_the_render_with_the_reason(chart, route, message):
    with pytest.raises(helm.HelmError, match=message):
        render(chart, with_route(**route))


def test_the_incremental_upgrade_refuses_the_route(chart):
    # KubeRay serves through its own Gateway then, and creates no serve Service.
    values = with_route({"upgradeStrategy": "NewClusterWithIncrementalUpgrade",
                         "clusterUpgradeOptions": {"gatewayClassName": "istio"}})
    with pytest.raises(helm.HelmError, match="KubeRay then serves through its own Gateway"):
        render(chart, values)


@pytest.mark.parametrize("route, message", [
    pytest.param({"parentRefs": [{"namespace": "gw"}]}, "name", id="parentRef without a name"),
    pytest.param({"hostnames": ["LLM.example.com"]}, "hostnames", id="upper-case hostname"),
    pytest.param({"path": "v1"}, "path", id="relative path"),
    pytest.param({"timeouts": {"request": 60}}, "request", id="timeout without its unit"),
])
def test_values_schema_refuses_what_the_crd_would(chart, route, message):
    with pytest.raises(helm.HelmValuesError, match=message):
        chart.render(with_route(**route), name="lc", namespace="llm")


def test_off_by_default(rendered):
    assert kinds(rendered["default"], "HTTPRoute") == []


# --- the NetworkPolicy lets the gateway in ------------------------------------------------


def _api_open_to(docs, source: Pod) -> bool:
    pods = ray_pods(docs).values()
    return all(admits(policies(docs), source, pod, API_PORT) for pod in pods)


def test_the_gateways_namespace_reaches_the_api_port_and_no_ray_port(chart):
    docs = render(chart, ROUTE)
    assert _api_open_to(docs, GATEWAY_PROXY)
    for pod in ray_pods(docs).values():
        for port in (GCS, DASHBOARD, RANDOM_RAY_PORT):
            assert not admits(policies(docs), GATEWAY_PROXY, pod, port)
    # Not without the route.
    assert not _api_open_to(render(chart, {}), GATEWAY_PROXY)


def test_gateway_namespaces_default_to_the_parents_and_can_be_named(chart):
    here = Pod({"app": "gateway-proxy"}, namespace="llm")  # a parentRef without a namespace: the release's
    docs = render(chart, with_route(parentRefs=[{"name": "public"}, {"name": "internal", "namespace": "gw-int"}]))
    assert _api_open_to(docs, here) and _api_open_to(docs, Pod({}, namespace="gw-int"))
    assert not _api_open_to(docs, GATEWAY_PROXY)
    envoy = Pod({"app.kubernetes.io/name": "envoy"}, namespace="envoy-gateway-system")
    docs = render(chart, with_route(gatewayNamespaces=["envoy-gateway-system"]))
    assert _api_open_to(docs, envoy) and not _api_open_to(docs, GATEWAY_PROXY)


def test_notes_name_the_route_and_the_namespaces_let_in(chart):
    values = with_route(parentRefs=[GATEWAY, {"name": "internal"}])
    notes = chart.render(values, name="lc", namespace="llm")["longctx-cluster/templates/NOTES.txt"]
    assert "HTTPRoute lc-longctx-cluster on gateways/public llm/internal for longctx.example.com" in notes
    assert "the gateway namespace(s) gateways, llm and `helm test`" in notes
