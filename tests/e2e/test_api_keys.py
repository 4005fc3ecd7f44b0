"""API keys on the real cluster: a changed keys file applies without a restart, and a document
follows its principal across a key rotation.

The shared cluster serves without keys (every other test calls it bare), so this module deploys a
second Serve application beside it, on the same Ray and Serve proxy: the ingress alone (listing
models and storing documents need no engine), with keys on, reading a keys file laid out and
updated as the kubelet does a mounted Secret (tests/support/secret_volume.py). It answers under
/keyed and is deleted afterwards.
"""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cluster.config import load_config, profile_path
from deployments.ingress.middleware import INGRESS_REPLICA_HEADER
from tests.e2e.helpers import wait_until
from tests.support.secret_volume import SecretVolume

APP, PREFIX = "keyed", "/keyed"
IL25 = "internlm2_5-7b-chat-1m"
ALICE_OLD, ALICE_NEW, BOB, CAROL = "lc-alice-old-0123", "lc-alice-new-0123", "lc-bob-0123456789", "lc-carol-0123456"
RELOAD_S = 0.2


@pytest.fixture(scope="module")
def keyed(cluster, tmp_path_factory):
    """(client of the keyed ingress, its keys volume)."""
    from ray import serve

    from deployments.ingress.deployment import IngressDeployment
    from deployments.serve_options import ingress_serve_options

    volume = SecretVolume(tmp_path_factory.mktemp("secret") / "api-keys")
    volume.write({"keys": f"alice:{ALICE_OLD}\nbob:{BOB}\n"})
    config = load_config(profile_path("cpu-demo"), [
        "ingress.auth.enabled=true",
        f"ingress.auth.keys_file={volume.path('keys')}",
        f"ingress.auth.reload_interval_s={RELOAD_S}",
        f"documents.store.data_dir={tmp_path_factory.mktemp('keyed-documents')}",
        "ingress.num_cpus=0.01",  # beside the shared cluster's replicas on two cores
    ], env={})
    app = IngressDeployment.options(
        num_replicas=1, ray_actor_options={"num_cpus": config.ingress.num_cpus}, **ingress_serve_options(config)
    ).bind(config.model_dump(mode="json"), {})
    serve.run(app, name=APP, route_prefix=PREFIX)
    try:
        with httpx.Client(base_url=cluster.base_url + PREFIX, timeout=60) as client:
            yield client, volume
    finally:
        serve.delete(APP)


def status(client, key: str, path: str = "/v1/models") -> int:
    return client.get(path, headers={"authorization": f"Bearer {key}"}).status_code


def reload_failures(metrics_url: str) -> float:
    """ray_longctx_api_keys_reload_failures_total of the keyed app's ingress."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(httpx.get(metrics_url, timeout=10).text)
        if family.name.startswith("ray_longctx_api_keys_reload_failures")
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("application") == APP
    )


def test_a_changed_keys_file_applies_without_a_restart(keyed, cluster):
    client, volume = keyed
    first = client.get("/v1/models", headers={"authorization": f"Bearer {ALICE_OLD}"})
    assert first.status_code == 200 and status(client, CAROL) == 401
    replica = first.headers[INGRESS_REPLICA_HEADER]
    # A key added to the file is accepted...
    volume.write({"keys": f"alice:{ALICE_OLD}\nbob:{BOB}\ncarol:{CAROL}\n"})
    wait_until(lambda: status(client, CAROL) == 200, timeout_s=10, what="the added key to be accepted")
    # ...a broken file changes nothing (read once a request comes after the interval; counted)...
    volume.write({"keys": f"alice:{ALICE_OLD}\nnot a principal:{BOB}\n"})
    wait_until(lambda: status(client, ALICE_OLD) == 200 and reload_failures(cluster.metrics_url) >= 1,
               timeout_s=15, what="the broken file to be counted in ray_longctx_api_keys_reload_failures")
    assert status(client, BOB) == 200 and status(client, CAROL) == 200
    # ...and a removed key is refused.
    volume.write({"keys": f"alice:{ALICE_OLD}\nbob:{BOB}\n"})
    wait_until(lambda: status(client, CAROL) == 401, timeout_s=10, what="the removed key to be refused")
    assert status(client, BOB) == 200
    # The same ingress replica throughout: nothing restarted.
    last = client.get("/v1/models", headers={"authorization": f"Bearer {ALICE_OLD}"})
    assert last.status_code == 200 and last.headers[INGRESS_REPLICA_HEADER] == replica


def test_a_document_follows_its_principal_across_a_rotation(keyed):
    client, volume = keyed
    volume.write({"keys": f"alice:{ALICE_OLD}\nbob:{BOB}\n"})
    wait_until(lambda: status(client, ALICE_OLD) == 200 and status(client, BOB) == 200, timeout_s=10,
               what="alice's and bob's keys")
    uploaded = client.post("/v1/documents", json={"text": "Alice's contract, clause 7.", "model": IL25},
                           headers={"authorization": f"Bearer {ALICE_OLD}"})
    assert uploaded.status_code == 201, uploaded.text
    doc = f"/v1/documents/{uploaded.json()['id']}"
    # The rotation: the new key beside the old, then the old one removed.
    volume.write({"keys": f"alice:{ALICE_OLD}\nalice:{ALICE_NEW}\nbob:{BOB}\n"})
    wait_until(lambda: status(client, ALICE_NEW) == 200, timeout_s=10, what="alice's new key")
    volume.write({"keys": f"alice:{ALICE_NEW}\nbob:{BOB}\n"})
    wait_until(lambda: status(client, ALICE_OLD) == 401, timeout_s=10, what="alice's old key to be refused")
    assert status(client, ALICE_NEW, doc) == 200
    assert status(client, BOB, doc) == 404  # another principal: as if it did not exist
    listed = client.get("/v1/documents", headers={"authorization": f"Bearer {BOB}"}).json()["data"]
    assert uploaded.json()["id"] not in [d["id"] for d in listed]
