"""The chart's API keys: a Secret mounted as the app's keys file on every Ray pod, so a rotated
Secret reaches running pods; generated only when asked, since a render that cannot look into
the cluster (GitOps) would make a new key each time. Rendered by Helm's Go engine."""

from __future__ import annotations

import base64

import pytest
import yaml

from cluster.config import load_config
from deployments.api_key_file import parse_file_text
from deployments.auth import KeyRing
from tests.helm.rendering import CHART, helm, kinds, render, the
from tests.helm.test_chart import ray_containers, serve_config
from tests.support.secret_volume import SecretVolume

DEFAULT_SECRET = "lc-longctx-cluster-api-keys"
# The values cases this module reads: the defaults, an existing Secret, auth off.
CASES = {"default": {}, "h100-80g": "ci/h100-80g.yaml", "h200-141g": "ci/h200-141g.yaml"}


@pytest.fixture(scope="module")
def rendered(chart):
    return {name: render(chart, values if isinstance(values, dict) else yaml.safe_load((CHART / values).read_text()))
            for name, values in CASES.items()}


def api_key_secrets(docs):
    # The documents' Redis has a Secret of its own (test_documents_store.py).
    return [s for s in kinds(docs, "Secret") if "api-keys" in s.get("data", {})]


def ray_pod_specs(rayservice):
    cluster = rayservice["spec"]["rayClusterConfig"]
    yield cluster["headGroupSpec"]["template"]["spec"]
    for group in cluster["workerGroupSpecs"]:
        yield group["template"]["spec"]


def keys_mounts(rayservice):
    """(secret volume, mount) of the API keys on each Ray pod."""
    found = []
    for spec in ray_pod_specs(rayservice):
        (volume,) = [v for v in spec.get("volumes", []) if v["name"] == "api-keys"]
        (mount,) = [m for m in spec["containers"][0].get("volumeMounts", []) if m["name"] == "api-keys"]
        found.append((volume["secret"], mount))
    return found


def app_overrides(rayservice):
    return serve_config(rayservice)["applications"][0]["args"].get("overrides", [])


def test_default_mounts_the_secret_as_a_file_and_generates_none(rendered):
    docs = rendered["default"]
    assert api_key_secrets(docs) == []  # nothing random in a render: GitOps-safe
    rayservice = the(docs, "RayService")
    mounts = keys_mounts(rayservice)
    assert len(mounts) >= 2  # the head and every worker group: an ingress replica may run on any
    for secret, mount in mounts:
        assert secret["secretName"] == DEFAULT_SECRET and secret["optional"] is True
        assert secret["items"] == [{"key": "api-keys", "path": "keys"}]
        # A subPath mount would never see the Secret change.
        assert mount["readOnly"] is True and "subPath" not in mount
    # Not an env var: a Secret in the environment cannot change in a running pod.
    assert not any(e["name"] == "LONGCTX_API_KEYS" for c in ray_containers(rayservice) for e in c.get("env", []))
    assert app_overrides(rayservice)[:2] == ["ingress.auth.enabled=true", "ingress.auth.keys_file=/etc/longctx/api-keys/keys"]


def test_the_app_reads_and_reloads_the_file_the_chart_mounts(rendered, tmp_path):
    """The app's config from the rendered args, its keys file at the mounted path (moved
    under tmp_path), updated as the kubelet updates a mounted Secret."""
    rayservice = the(rendered["default"], "RayService")
    args = serve_config(rayservice)["applications"][0]["args"]
    auth = load_config(args["cluster"], args["overrides"], env={}).ingress.auth
    (secret, mount), *_ = keys_mounts(rayservice)
    assert auth.enabled and auth.keys_file == f"{mount['mountPath']}/{secret['items'][0]['path']}"
    volume = SecretVolume(tmp_path / mount["mountPath"].strip("/"))
    volume.write({"keys": "alice:lc-alice-old-0123\n"})
    ring = KeyRing.from_config(auth.model_copy(update={"keys_file": str(volume.path("keys")),
                                                       "reload_interval_s": 1e-9}), env={})
    assert ring.principal("Bearer lc-alice-old-0123") == "alice"
    volume.write({"keys": "alice:lc-alice-new-0123\n"})
    assert ring.principal("Bearer lc-alice-new-0123") == "alice"
    assert ring.principal("Bearer lc-alice-old-0123") is None


def test_a_generated_secret_is_asked_for_kept_and_in_the_file_format(chart):
    docs = render(chart, {"auth": {"generateSecret": True}})
    (secret,) = api_key_secrets(docs)
    assert secret["metadata"]["name"] == DEFAULT_SECRET
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    (entry,) = parse_file_text(base64.b64decode(secret["data"]["api-keys"]).decode(), "generated")
    assert entry.principal == "default" and len(entry.key.get_secret_value()) > 40
    assert {s["secretName"] for s, _ in keys_mounts(the(docs, "RayService"))} == {DEFAULT_SECRET}


def test_generate_and_existing_secret_together_fail(chart):
    with pytest.raises(helm.HelmError, match="set one of them"):
        render(chart, {"auth": {"generateSecret": True, "existingSecret": "mine"}})


def test_existing_secret_is_mounted_not_created(rendered):
    docs = rendered["h100-80g"]
    assert api_key_secrets(docs) == []
    assert {s["secretName"] for s, _ in keys_mounts(the(docs, "RayService"))} == {"longctx-api-keys"}


def test_auth_disabled_mounts_and_sets_nothing(rendered):
    docs = rendered["h200-141g"]
    rayservice = the(docs, "RayService")
    assert api_key_secrets(docs) == []
    for spec in ray_pod_specs(rayservice):
        assert all(v["name"] != "api-keys" for v in spec.get("volumes", []))
    # auth.enabled: false (ci/h200-141g.yaml) leaves the profile's setting alone.
    assert not [o for o in app_overrides(rayservice) if o.startswith("ingress.auth.")]


def test_notes_say_how_to_create_the_secret_only_when_none_is_named(chart):
    def notes(values):
        return chart.render(values, name="lc", namespace="llm")["longctx-cluster/templates/NOTES.txt"]

    assert f"create secret generic {DEFAULT_SECRET} --from-file=api-keys=keys.txt" in notes({})
    for values in ({"auth": {"existingSecret": "mine"}}, {"auth": {"generateSecret": True}}):
        assert "create secret generic" not in notes(values)
