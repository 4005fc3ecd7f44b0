"""Two ingress replicas on one Redis: a document uploaded through one is
answerable through the other, and after both are replaced."""

from __future__ import annotations

import httpx
import pytest

from deployments.ingress.middleware import INGRESS_REPLICA_HEADER
from tests.e2e.helpers import wait_until
from tests.e2e_redis.conftest import MODEL, POOL

pytestmark = pytest.mark.e2e

# Serve's proxy picks between the two replicas by load (power of two choices):
# sequential questions reach both well within this many.
MAX_QUESTIONS = 40
RESTART_TIMEOUT_S = 300


def ingress_actors() -> dict[str, object]:
    """{replica id: actor} of the live ingress replicas (Serve's actor names end in the id)."""
    import ray

    found = {}
    for named in ray.util.list_named_actors(all_namespaces=True):
        if "#ingress#" in named["name"]:
            found[named["name"].rsplit("#", 1)[1]] = ray.get_actor(named["name"], namespace=named["namespace"])
    return found


def ask(http, doc_id: str, question: str):
    response = http.post(f"/v1/documents/{doc_id}/ask", json={"question": question, "max_tokens": 2})
    assert response.status_code == 200, response.text
    assert response.headers["x-pool"] == POOL
    return response


@pytest.fixture(scope="module")
def document(http, cluster):
    text = " ".join(f"clause{i % 53} binds party{i % 5}." for i in range(300))
    response = http.post("/v1/documents", json={"text": text, "metadata": {"title": "shared"}})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["pool"][MODEL] == POOL
    return {**body, "uploaded_by": response.headers[INGRESS_REPLICA_HEADER]}


def test_every_replica_answers_about_a_document_another_stored(http, cluster, redis_server, document):
    replicas = ingress_actors()
    assert len(replicas) == 2
    assert document["uploaded_by"] in replicas
    # The document is in the shared Redis, under the profile's key prefix.
    prefix = cluster.config.documents.store.key_prefix
    assert redis_server.client().exists(f"{prefix}meta:{document['id']}") == 1
    served_by = []
    for i in range(MAX_QUESTIONS):
        served_by.append(ask(http, document["id"], f"Who does clause {i} bind?").headers[INGRESS_REPLICA_HEADER])
        if set(served_by) == set(replicas):
            break
    # Both replicas answered, the one that did not store it included.
    assert set(served_by) == set(replicas), served_by
    assert any(r != document["uploaded_by"] for r in served_by)


def test_documents_outlive_the_ingress_replicas(http, cluster, document):
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
