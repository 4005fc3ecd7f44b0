"""Two ingress replicas on one password-protected Redis: a document uploaded through one is
answerable through the other, and after both are replaced.

On the shared cluster, beside its own application (which keeps SQLite, one ingress replica): a
second Serve application, the ingress alone with two replicas and the document store in a Redis
started here (Debian's `redis-server`, `make redis-server`, with a password and its append-only
file on, as the Helm chart runs it). Its questions go to the shared application's pool
deployments through their handles, as the ingress's own application wires them. The password
reaches the replicas as the chart's does: an environment variable that
`documents.store.password_env` names (here the replicas' runtime_env; the Secret's role on
Kubernetes). It answers under /redis and is deleted afterwards. Without redis-server the module
skips.
"""

from __future__ import annotations

import secrets

import httpx
import pytest

from cluster.cli import APP_NAME as SHARED_APP
from cluster.config import load_config, profile_path
from deployments.ingress.middleware import INGRESS_REPLICA_HEADER
from tests.e2e.helpers import wait_until
from tests.support.redis_server import ping
from tests.support.redis_server import redis_server as start_redis

pytestmark = pytest.mark.e2e

APP, PREFIX = "redis-documents", "/redis"
MODEL, POOL = "internlm2_5-7b-chat-1m", "il25-short"
PASSWORD_ENV = "LONGCTX_E2E_REDIS_PASSWORD"
# Serve's proxy picks between the two replicas by load (power of two choices):
# sequential questions reach both well within this many.
MAX_QUESTIONS = 40
RESTART_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    password = secrets.token_urlsafe(24)
    with start_redis(tmp_path_factory.mktemp("redis"), db=1, password=password, append_only=True) as url:
        # The server really wants the password: a client without it is refused.
        assert not ping(url, None)
        yield url, password


def redis_client(redis_server):
    import redis

    url, password = redis_server
    return redis.Redis.from_url(url, password=password, socket_timeout=5, decode_responses=True)


@pytest.fixture(scope="module")
def redis_app(cluster, redis_server):
    """The application's config; its two ingress replicas serve under PREFIX until the module ends."""
    from ray import serve

    from deployments.engines import pool_deployment_name
    from deployments.ingress.deployment import IngressDeployment
    from deployments.serve_options import ingress_serve_options

    url, password = redis_server
    config = load_config(profile_path("cpu-demo"), [
        "ingress.replicas=2",
        "ingress.num_cpus=0.01",  # beside the shared cluster's replicas on two cores
        "ingress.stream_heartbeat_s=0",
        "documents.store.backend=redis",
        f"documents.store.url={url}",
        f"documents.store.password_env={PASSWORD_ENV}",
        f"documents.store.key_prefix='e2e:{secrets.token_hex(4)}:'",  # quoted: overrides are YAML
    ], env={})
    assert config.ingress.replicas == 2 and config.documents.store.backend == "redis"
    pools = {p.name: serve.get_deployment_handle(pool_deployment_name(p.name), app_name=SHARED_APP)
             for p in config.pools}
    app = IngressDeployment.options(
        num_replicas=config.ingress.replicas,
        ray_actor_options={"num_cpus": config.ingress.num_cpus,
                           "runtime_env": {"env_vars": {PASSWORD_ENV: password}}},
        **ingress_serve_options(config),
    ).bind(config.model_dump(mode="json"), pools)
    serve.run(app, name=APP, route_prefix=PREFIX)
    try:
        yield config
    finally:
        serve.delete(APP)


@pytest.fixture(scope="module")
def http(redis_app, cluster):
    with httpx.Client(base_url=cluster.base_url + PREFIX, timeout=300) as client:
        yield client


def ingress_actors() -> dict[str, object]:
    """{replica id: actor} of the live ingress replicas of this module's application."""
    import ray

    found = {}
    for named in ray.util.list_named_actors(all_namespaces=True):
        if f"{APP}#ingress#" in named["name"]:
            found[named["name"].rsplit("#", 1)[1]] = ray.get_actor(named["name"], namespace=named["namespace"])
    return found


def ask(http, doc_id: str, question: str):
    response = http.post(f"/v1/documents/{doc_id}/ask", json={"question": question, "max_tokens": 2})
    assert response.status_code == 200, response.text
    assert response.headers["x-pool"] == POOL
    return response


@pytest.fixture(scope="module")
def document(http):
    text = " ".join(f"clause{i % 53} binds party{i % 5}." for i in range(300))
    response = http.post("/v1/documents", json={"text": text, "metadata": {"title": "shared"}})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["pool"][MODEL] == POOL
    return {**body, "uploaded_by": response.headers[INGRESS_REPLICA_HEADER]}


def test_every_replica_answers_about_a_document_another_stored(http, redis_app, redis_server, document):
    replicas = ingress_actors()
    assert len(replicas) == 2
    assert document["uploaded_by"] in replicas
    # The document is in the shared Redis, under the application's key prefix.
    prefix = redis_app.documents.store.key_prefix
    assert redis_client(redis_server).exists(f"{prefix}meta:{document['id']}") == 1
    served_by = []
    for i in range(MAX_QUESTIONS):
        served_by.append(ask(http, document["id"], f"Who does clause {i} bind?").headers[INGRESS_REPLICA_HEADER])
        if set(served_by) == set(replicas):
            break
    # Both replicas answered, the one that did not store it included.
    assert set(served_by) == set(replicas), served_by
    assert any(r != document["uploaded_by"] for r in served_by)


def test_documents_outlive_the_ingress_replicas(http, document):
    import ray

    old = ingress_actors()
    assert len(old) == 2
    for actor in old.values():
        ray.kill(actor, no_restart=True)

    # Serve's controller replaces both; ready once two new replicas answer.
    def replaced():
        live = ingress_actors()
        return len(live) == 2 and not set(live) & set(old) and set(live)

    new = wait_until(replaced, RESTART_TIMEOUT_S, "Serve to replace both ingress replicas")
    served_by = set()

    def new_replicas_answer():
        try:
            response = http.get(f"/v1/documents/{document['id']}")
        except httpx.HTTPError:  # the proxy may still hold a connection to a dead replica
            return False
        if response.status_code != 200:
            assert response.status_code in (502, 503), response.text  # a replica still starting
            return False
        served_by.add(response.headers[INGRESS_REPLICA_HEADER])
        return True

    wait_until(new_replicas_answer, RESTART_TIMEOUT_S, "a new ingress replica to answer")
    meta = http.get(f"/v1/documents/{document['id']}").json()
    assert meta["metadata"] == {"title": "shared"} and meta["tokens"] == document["tokens"]
    for i in range(MAX_QUESTIONS):
        served_by.add(ask(http, document["id"], f"After the restart, clause {i}?").headers[INGRESS_REPLICA_HEADER])
        if served_by == new:
            break
    # Only the new replicas answer now, and both found the document.
    assert served_by == new, (served_by, new)
