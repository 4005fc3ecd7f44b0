"""The documents' Redis in the chart: bundled (StatefulSet, claim, Secret) or
external, wired into the profile's documents.store and the pods' environment;
GCS fault tolerance on it; the ingress kept off the head.

Rendered by Helm's Go engine like test_chart.py; the app's side is checked by
loading the rendered serve config with the project's own loader and opening
the store it names.
"""

from __future__ import annotations

import base64

import jsonschema
import pytest
import yaml

from tests.helm.rendering import K8S_VERSION, helm, kinds, render, the
from tests.helm.test_chart import (  # noqa: F401  (rayservice_schema: a fixture)
    kubernetes_validate,
    ray_containers,
    rayservice_schema,
    serve_config,
)
from tests.helm.test_security import (
    ELSEWHERE, GCS, INGRESS_CONTROLLER, NAMESPACE, NEIGHBOUR, OPERATOR, OTHER_RELEASE, PROMETHEUS, RANDOM_RAY_PORT,
    Pod, admits, hook_pod, policies, ray_pods, selects,
)
from cluster.config import load_config

REDIS_PORT = 6379
PASSWORD_ENV = "LONGCTX_REDIS_PASSWORD"
EXTERNAL = {"documentStore": {"mode": "external",
                              "external": {"url": "rediss://redis.data.svc:6380/3", "existingSecret": "team-redis",
                                           "secretKey": "pw"}}}


def app_config(docs, env=None):
    """The profile as the Serve app loads it on a pod."""
    args = serve_config(the(docs, "RayService"))["applications"][0]["args"]
    return load_config(args["cluster"], args.get("overrides", []), env=env or {})


def redis_pod(docs) -> Pod:
    return Pod(the(docs, "StatefulSet")["spec"]["template"]["metadata"]["labels"])


def redis_secrets(docs) -> list[dict]:
    return [s for s in kinds(docs, "Secret") if s["metadata"]["name"].endswith("-redis")]


def password_env(container) -> list[dict]:
    return [e for e in container.get("env", []) if e["name"] == PASSWORD_ENV]


# --- bundled (the default) ---------------------------------------------------------


def test_bundled_redis_is_a_statefulset_with_its_append_only_file_on_a_claim(rendered):
    docs = rendered["default"]
    sts = the(docs, "StatefulSet")
    for doc in [sts, *kinds(docs, "Service"), *kinds(docs, "Secret")]:
        kubernetes_validate.validate({k: v for k, v in doc.items() if k != "__template"}, K8S_VERSION, strict=True)
    spec = sts["spec"]
    assert spec["replicas"] == 1
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    image, tag = container["image"].rsplit(":", 1)
    assert image == "redis" and tag not in ("", "latest")
    args = container["args"]
    option = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
    assert option["--appendonly"] == "yes" and option["--dir"] == "/data"
    assert option["--maxmemory-policy"] == "noeviction"
    # The password from the Secret (Kubernetes expands $(VAR) in args), never literal.
    assert option["--requirepass"] == "$(REDIS_PASSWORD)"
    # The claim under /data, kept when the StatefulSet goes.
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in container["volumeMounts"]
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    # Not root, nothing to escalate; resources bounded.
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["limits"]["memory"] == container["resources"]["requests"]["memory"]
    # The Service the app's URL names selects this pod on the Redis port.
    (service,) = [s for s in kinds(docs, "Service") if s["metadata"]["name"] == spec["serviceName"]]
    assert selects({"matchLabels": service["spec"]["selector"]}, spec["template"]["metadata"]["labels"])
    assert [p["port"] for p in service["spec"]["ports"]] == [REDIS_PORT]


def test_bundled_redis_probes_authenticate_with_the_secret(rendered):
    docs = rendered["default"]
    (container,) = the(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    (secret,) = redis_secrets(docs)
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    ref = {"name": secret["metadata"]["name"], "key": "password"}
    # redis-cli reads REDISCLI_AUTH; the server its --requirepass.
    assert env == {"REDIS_PASSWORD": ref, "REDISCLI_AUTH": ref}
    for probe in ("readinessProbe", "livenessProbe"):
        command = " ".join(container[probe]["exec"]["command"])
        assert "redis-cli" in command and "ping" in command and "PONG" in command
        assert " -a " not in command  # a password argument would show in ps
    # Alive while it loads a large append-only file, not ready until it has.
    assert "LOADING" in " ".join(container["livenessProbe"]["exec"]["command"])
    assert "LOADING" not in " ".join(container["readinessProbe"]["exec"]["command"])


def test_bundled_password_is_generated_kept_and_never_in_the_serve_config(rendered):
    docs = rendered["default"]
    (secret,) = redis_secrets(docs)
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    password = base64.b64decode(secret["data"]["password"]).decode()
    assert len(password) >= 32
    rayservice = the(docs, "RayService")
    assert password not in yaml.safe_dump(rayservice)
    # Every Ray pod (an ingress replica may run on any) gets it from the Secret.
    containers = list(ray_containers(rayservice))
    assert len(containers) >= 2
    for container in containers:
        (env,) = password_env(container)
        assert env["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"], "key": "password"}


@pytest.mark.parametrize("case", ["default", "a100-80g", "h100-80g", "h200-141g"])
def test_the_profile_stores_documents_in_the_bundled_redis(case, rendered):
    docs = rendered[case]
    store = app_config(docs).documents.store
    service = the(docs, "StatefulSet")["spec"]["serviceName"]
    assert store.backend == "redis"
    assert store.url == f"redis://{service}.{NAMESPACE}.svc:{REDIS_PORT}/1"
    assert store.password_env == PASSWORD_ENV
    # The profile's own store settings stay.
    assert store.key_prefix == "longctx:docs:" and store.limits.max_documents == 10_000


def test_the_store_opens_with_the_password_from_the_environment(rendered):
    pytest.importorskip("redis")
    from deployments.documents.backends.factory import open_store

    docs = rendered["default"]
    (secret,) = redis_secrets(docs)
    password = base64.b64decode(secret["data"]["password"]).decode()
    store_config = app_config(docs).documents.store
    # As on a pod: the Secret in the environment. Opening connects lazily, so
    # this checks the wiring, not a server.
    store = open_store(store_config, env={PASSWORD_ENV: password})
    try:
        kwargs = store._redis.connection_pool.connection_kwargs  # redis-py's resolved settings
        assert kwargs["password"] == password and kwargs["db"] == 1
    finally:
        store.close()
    with pytest.raises(ValueError, match=PASSWORD_ENV):
        open_store(store_config, env={})


def test_only_the_ray_pods_reach_redis(rendered):
    docs = rendered["default"]
    pols = policies(docs)
    redis = redis_pod(docs)
    (policy,) = [p for p in pols if selects(p["spec"]["podSelector"], redis.labels)]
    kubernetes_validate.validate(policy, K8S_VERSION, strict=True)
    # The head, every worker group, and KubeRay's Redis cleanup Job (a copy of
    # the head's pod, labels included).
    for pod in ray_pods(docs).values():
        assert admits(pols, pod, redis, REDIS_PORT)
        assert not admits(pols, pod, redis, RANDOM_RAY_PORT)
    for stranger in [NEIGHBOUR, ELSEWHERE, OTHER_RELEASE, hook_pod(docs), INGRESS_CONTROLLER, PROMETHEUS, OPERATOR]:
        assert not admits(pols, stranger, redis, REDIS_PORT), stranger
    # The Ray pods' own policy does not select Redis, nor Redis the Ray pods.
    for pod in ray_pods(docs).values():
        assert not admits(pols, redis, pod, GCS)


def test_no_redis_policy_without_network_policies(chart):
    docs = render(chart, {"networkPolicy": {"enabled": False}})
    assert kinds(docs, "NetworkPolicy") == []
    assert the(docs, "StatefulSet")


def test_an_existing_password_secret_is_used_not_created(chart):
    docs = render(chart, {"documentStore": {"mode": "bundled", "bundled": {"existingSecret": "ops-redis",
                                                                            "secretKey": "redis-password"}}})
    assert redis_secrets(docs) == []
    ref = {"name": "ops-redis", "key": "redis-password"}
    (container,) = the(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    assert all(e["valueFrom"]["secretKeyRef"] == ref for e in container["env"])
    for container in ray_containers(the(docs, "RayService")):
        assert password_env(container)[0]["valueFrom"]["secretKeyRef"] == ref


# --- external -------------------------------------------------------------------------


def test_external_redis_takes_the_url_and_its_secret(chart):
    docs = render(chart, EXTERNAL)
    assert kinds(docs, "StatefulSet") == []
    assert redis_secrets(docs) == []
    assert all(not p["metadata"]["name"].endswith("-redis") for p in policies(docs))
    store = app_config(docs).documents.store
    assert (store.backend, store.url, store.password_env) == ("redis", "rediss://redis.data.svc:6380/3", PASSWORD_ENV)
    for container in ray_containers(the(docs, "RayService")):
        (env,) = password_env(container)
        assert env["valueFrom"]["secretKeyRef"] == {"name": "team-redis", "key": "pw"}


def test_external_redis_without_a_password(chart):
    docs = render(chart, {"documentStore": {"mode": "external", "external": {"url": "redis://r:6379/0"}}})
    store = app_config(docs).documents.store
    assert (store.url, store.password_env) == ("redis://r:6379/0", None)
    assert all(not password_env(c) for c in ray_containers(the(docs, "RayService")))


@pytest.mark.parametrize("url, message", [
    ("", "documentStore.external.url is required"),
    ("redis://:secret@r:6379/0", "no user or password"),
    ("http://r:6379", "must be redis://"),
])
def test_bad_external_urls_fail_at_install(chart, url, message):
    with pytest.raises(helm.HelmError, match=message):
        chart.render({"documentStore": {"mode": "external", "external": {"url": url}}}, name="lc",
                     namespace=NAMESPACE)


def test_values_schema_rejects_an_unknown_mode(chart):
    with pytest.raises(helm.HelmValuesError, match="mode"):
        chart.render({"documentStore": {"mode": "sqlite"}}, name="lc", namespace=NAMESPACE)


# --- GCS fault tolerance and the ingress off the head -----------------------------------


def gcs_options(docs):
    return the(docs, "RayService")["spec"]["rayClusterConfig"].get("gcsFaultToleranceOptions")


def test_gcs_fault_tolerance_is_off_by_default(rendered):
    assert gcs_options(rendered["default"]) is None
    # helm/ci/ha.yaml turns it on, so every chart test also runs with it.
    assert gcs_options(rendered["ha"])["redisAddress"].endswith(f".svc:{REDIS_PORT}")


def test_gcs_fault_tolerance_on_the_bundled_redis(chart, rayservice_schema):
    docs = render(chart, {"gcsFaultTolerance": {"enabled": True}})
    options = gcs_options(docs)
    service = the(docs, "StatefulSet")["spec"]["serviceName"]
    (secret,) = redis_secrets(docs)
    assert options == {
        "redisAddress": f"{service}.{NAMESPACE}.svc:{REDIS_PORT}",
        "redisPassword": {"valueFrom": {"secretKeyRef": {"name": secret["metadata"]["name"], "key": "password"}}},
    }
    # No namespace: KubeRay takes each RayCluster's UID, so the old and new
    # clusters of a NewCluster upgrade never share GCS tables. Documents sit
    # in database 1, the GCS in Ray's 0.
    assert app_config(docs).documents.store.url.endswith("/1")
    head = the(docs, "RayService")["spec"]["rayClusterConfig"]["headGroupSpec"]
    # KubeRay's ValidateRayClusterSpec: with gcsFaultToleranceOptions, no
    # redis-password / REDIS_PASSWORD / RAY_REDIS_ADDRESS of one's own.
    assert "redis-password" not in head["rayStartParams"]
    env = {e["name"] for e in head["template"]["spec"]["containers"][0].get("env", [])}
    assert not env & {"REDIS_PASSWORD", "RAY_REDIS_ADDRESS", "REDIS_USERNAME"}
    jsonschema.validate({k: v for k, v in the(docs, "RayService").items() if k != "__template"}, rayservice_schema)


def test_gcs_fault_tolerance_on_an_external_redis(chart, rayservice_schema):
    docs = render(chart, {**EXTERNAL, "gcsFaultTolerance": {"enabled": True, "externalStorageNamespace": "lc-gcs"}})
    assert gcs_options(docs) == {
        "redisAddress": "rediss://redis.data.svc:6380",
        "redisPassword": {"valueFrom": {"secretKeyRef": {"name": "team-redis", "key": "pw"}}},
        "externalStorageNamespace": "lc-gcs",
    }
    other = render(chart, {"gcsFaultTolerance": {"enabled": True, "redis": {
        "address": "gcs-redis.ops.svc:6379", "existingSecret": "gcs-redis", "secretKey": "auth"}}})
    assert gcs_options(other) == {
        "redisAddress": "gcs-redis.ops.svc:6379",
        "redisPassword": {"valueFrom": {"secretKeyRef": {"name": "gcs-redis", "key": "auth"}}},
    }
    for rendered_docs in (docs, other):
        jsonschema.validate({k: v for k, v in the(rendered_docs, "RayService").items() if k != "__template"},
                            rayservice_schema)


def test_the_ingress_is_kept_off_the_head_when_asked(chart, rendered):
    head_params = the(rendered["default"], "RayService")["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]
    assert "num-cpus" not in head_params
    docs = render(chart, {"head": {"hostsIngress": False}})
    spec = the(docs, "RayService")["spec"]["rayClusterConfig"]
    # The head advertises no CPU; an ingress replica needs some, so Ray puts it
    # on a worker. The Serve controller and proxies ask for none and stay.
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert app_config(docs).ingress.num_cpus > 0
    assert all("num-cpus" not in g["rayStartParams"] for g in spec["workerGroupSpecs"])
    with pytest.raises(helm.HelmError, match="remove num-cpus from head.rayStartParams"):
        chart.render({"head": {"hostsIngress": False, "rayStartParams": {"num-cpus": "4"}}}, name="lc",
                     namespace=NAMESPACE)


def test_fault_tolerant_renders_pass_kuberays_validation(chart):
    from tests.helm import kuberay_validation as kuberay

    for values in ({"gcsFaultTolerance": {"enabled": True}, "head": {"hostsIngress": False}},
                   {**EXTERNAL, "gcsFaultTolerance": {"enabled": True, "externalStorageNamespace": "lc-gcs"}},
                   {"gcsFaultTolerance": {"enabled": True, "redis": {"address": "gcs-redis:6379"}}}):
        kuberay.check(the(render(chart, values), "RayService"))
