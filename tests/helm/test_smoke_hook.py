"""The chart's `helm test` pod: `python -m cluster smoke` (cluster/smoke.py) against the API.

The check itself is tested in tests/cluster/test_smoke.py and, as the command this pod runs,
against the CPU demo cluster in tests/e2e/test_smoke.py. Here: that the pod runs it from the
project's image, at the Service the Ingress and the HTTPRoute use, with the API keys' Secret
mounted when auth is on, and that the NetworkPolicy lets it reach the API port. Its pod security
is checked with every other pod's (test_pod_security.py); its URL under the incremental upgrade
in test_lifecycle.py.
"""

from __future__ import annotations

import pytest

from tests.helm.rendering import CASES, render, the
from tests.helm.test_security import API_PORT, DASHBOARD, GCS, admits, hook_pod, policies, ray_pods


def hook(docs) -> dict:
    pod = the(docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    return pod


def args_of(pod: dict) -> dict[str, str]:
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["python", "-m", "cluster", "smoke"]
    return dict(arg.removeprefix("--").split("=", 1) for arg in container["args"])


@pytest.mark.parametrize("values, case", CASES)
def test_the_hook_checks_the_api_service(rendered, values, case):
    docs = rendered[case]
    service = the(docs, "RayService")["spec"]["serveService"]
    url = f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    pod = hook(docs)
    assert args_of(pod)["base-url"] == url
    assert pod["spec"]["containers"][0]["image"] == the(docs, "RayService")["spec"]["rayClusterConfig"][
        "headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
    # The NetworkPolicy lets it reach the API, and no Ray port.
    pods = ray_pods(docs).values()
    assert all(admits(policies(docs), hook_pod(docs), pod, API_PORT) for pod in pods)
    assert not any(admits(policies(docs), hook_pod(docs), pod, port) for pod in pods for port in (GCS, DASHBOARD))


def test_the_hook_sends_a_key_from_the_api_key_secret(chart):
    pod = hook(render(chart, {"auth": {"existingSecret": "team-keys", "secretKey": "keys.txt"}}))
    path = args_of(pod)["api-key-file"]
    (mount,) = pod["spec"]["containers"][0]["volumeMounts"]
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "team-keys"
    (item,) = volume["secret"]["items"]
    assert item["key"] == "keys.txt" and path == f"{mount['mountPath']}/{item['path']}"
    assert mount["readOnly"] is True


def test_without_auth_the_hook_sends_no_key(chart):
    pod = hook(render(chart, {"auth": {"enabled": False}}))
    assert "api-key-file" not in args_of(pod)
    assert not pod["spec"].get("volumes") and not pod["spec"]["containers"][0].get("volumeMounts")


def test_the_hooks_deadline_image_and_placement_follow_the_values(chart):
    pod = hook(render(chart, {"tests": {"timeoutSeconds": 900, "image": "registry.local/longctx:smoke",
                                        "nodeSelector": {"pool": "cpu"}}}))
    assert args_of(pod)["timeout-s"] == "900"
    assert pod["spec"]["activeDeadlineSeconds"] == 900 + 120  # the check's own deadline comes first
    assert pod["spec"]["containers"][0]["image"] == "registry.local/longctx:smoke"
    assert pod["spec"]["nodeSelector"] == {"pool": "cpu"}

