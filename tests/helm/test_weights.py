"""Weights on Kubernetes: pinned revisions only, each pod fetching only what it runs, ephemeral storage sized
from the weights, and the fill Job onto a claim that every Ray pod mounts read-only and checks."""

from __future__ import annotations

import json

import pytest

from tests.helm.rendering import helm, kinds, render, the
from tests.helm.test_chart import rayservice_schema  # noqa: F401  (the KubeRay CRD's schema, a fixture)

IL25, IL3 = "internlm2_5-7b-chat-1m", "internlm3-8b-instruct"
PINNED = {IL25: {"revision": "0" * 39 + "1"}, IL3: {"revision": "f" * 40}}
DOWNLOAD = {"weights": {"source": "download", "download": {"models": PINNED}}}
FILL = {"weights": {"pvc": {"fill": {"enabled": True}}, "download": {"models": PINNED}}}


def pods(docs):
    spec = the(docs, "RayService")["spec"]["rayClusterConfig"]
    found = {"head": spec["headGroupSpec"]["template"]["spec"]}
    found |= {g["groupName"]: g["template"]["spec"] for g in spec["workerGroupSpecs"]}
    return found


def init(pod, name):
    (container,) = [c for c in pod.get("initContainers", []) if c["name"] == name]
    return container


def jobs(container):
    return json.loads(next(e["value"] for e in container["env"] if e["name"] == "LONGCTX_DOWNLOADS"))


@pytest.mark.parametrize("revision", ["", "main", "v1.0", "0123abc", "A" * 40, "0" * 41])
@pytest.mark.parametrize("mode", [DOWNLOAD, FILL], ids=["download", "fill"])
def test_a_revision_that_is_not_a_full_commit_is_refused(chart, mode, revision):
    values = json.loads(json.dumps(mode))
    values["weights"]["download"]["models"][IL3] = {"revision": revision}
    with pytest.raises(helm.HelmError) as refused:
        chart.render(values, name="lc", namespace="llm")
    message = str(refused.value)
    assert f"weights.download.models.{IL3}.revision is \"{revision}\"" in message
    assert "40-character commit hash of internlm/internlm3-8b-instruct" in message


def test_the_shipped_values_pin_nothing_so_the_hub_modes_fail_until_set(chart):
    # No network here to look the commits up: the operator sets them, the chart never guesses.
    with pytest.raises(helm.HelmError, match=f"weights.download.models.{IL25}.revision is \"\""):
        chart.render({"weights": {"source": "download"}}, name="lc", namespace="llm")
    render(chart, {})  # the default (an existing claim) needs no revision


def test_download_fetches_each_pods_own_models_whole_and_the_others_tokenizers(chart):
    by_pod = {name: jobs(init(pod, "fetch-weights")) for name, pod in pods(render(chart, DOWNLOAD)).items()}
    whole = {name: {j["model"] for j in js if not j["patterns"]} for name, js in by_pod.items()}
    # a100-80g: the 4-GPU pod runs only il25-long; the 1-GPU pods run il25-short and both il3 pools.
    assert whole == {"head": set(), "a100-80g-x1": {IL25, IL3}, "a100-80g-x2": {IL25}, "a100-80g-x4": {IL25}}
    # Every pod holds every model's tokenizer: an ingress replica may run in any pod.
    for js in by_pod.values():
        assert {j["model"] for j in js} == {IL25, IL3}
        for j in js:
            assert j["revision"] == PINNED[j["model"]]["revision"]
            assert j["dir"] == f"/models/{j['model']}"
            assert j["patterns"] == [] or "*.json" in j["patterns"]


def test_download_init_containers_request_and_limit_ephemeral_storage_for_their_weights(chart):
    found = {}
    for name, pod in pods(render(chart, DOWNLOAD)).items():
        resources = init(pod, "fetch-weights")["resources"]
        assert resources["requests"]["ephemeral-storage"] == resources["limits"]["ephemeral-storage"]
        volume = next(v for v in pod["volumes"] if v["name"] == "models")
        found[name] = (resources["limits"]["ephemeral-storage"], volume["emptyDir"]["sizeLimit"])
    # sizeGi 15 (il25) and 17 (il3) whole, 1 GiB per tokenizer-only model, 1 GiB of hub metadata;
    # the container adds headroomGi 4 for Ray's own files (its limit is the pod's).
    assert found == {"head": ("7Gi", "3Gi"), "a100-80g-x1": ("37Gi", "33Gi"),
                     "a100-80g-x2": ("21Gi", "17Gi"), "a100-80g-x4": ("21Gi", "17Gi")}


def test_the_download_script_refuses_a_branch_and_marks_whole_models(chart):
    script = init(pods(render(chart, DOWNLOAD))["head"], "fetch-weights")["args"][0]
    assert 're.fullmatch(r"[0-9a-f]{40}", job["revision"])' in script
    assert ".longctx-revision" in script


def test_fill_job_downloads_every_model_whole_onto_the_claim(chart):
    docs = render(chart, FILL)
    (claim,) = kinds(docs, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "longctx-models"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "66Gi"
    (job,) = kinds(docs, "Job")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert {(j["model"], j["revision"]) for j in jobs(container)} == {(m, p["revision"]) for m, p in PINNED.items()}
    assert all(j["patterns"] == [] for j in jobs(container))
    assert pod["volumes"] == [{"name": "models", "persistentVolumeClaim": {"claimName": "longctx-models"}}]
    assert container["volumeMounts"] == [{"name": "models", "mountPath": "/models"}]


def test_every_ray_pod_mounts_the_filled_claim_read_only_and_checks_the_revisions(chart):
    docs = render(chart, FILL)
    job_name = the(docs, "Job")["metadata"]["name"]
    for name, pod in pods(docs).items():
        volume = next(v for v in pod["volumes"] if v["name"] == "models")
        assert volume["persistentVolumeClaim"] == {"claimName": "longctx-models", "readOnly": True}
        check = init(pod, "check-weights")
        assert check["volumeMounts"] == [{"name": "models", "mountPath": "/models", "readOnly": True}]
        assert {(j["model"], j["revision"]) for j in jobs(check)} == {(m, p["revision"]) for m, p in PINNED.items()}
        assert f"kubectl -n llm wait --for=condition=complete job/{job_name}" in check["args"][0]


def test_new_revisions_make_a_new_fill_job(chart):
    # A Job's pod template is immutable: an upgrade to other commits must not patch the old Job.
    first = the(render(chart, FILL), "Job")["metadata"]["name"]
    values = json.loads(json.dumps(FILL))
    values["weights"]["download"]["models"][IL3]["revision"] = "e" * 40
    second = the(render(chart, values), "Job")["metadata"]["name"]
    assert first != second and first.startswith("lc-longctx-cluster-fill-weights-") and len(second) <= 63


def test_fill_into_your_own_claim_creates_none(chart):
    values = json.loads(json.dumps(FILL))
    values["weights"]["pvc"] |= {"claimName": "mine", "fill": {"enabled": True, "createClaim": False}}
    docs = render(chart, values)
    assert kinds(docs, "PersistentVolumeClaim") == []
    assert the(docs, "Job")["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "mine"


def test_check_script_names_what_is_missing(chart, tmp_path):
    # The check's own Python, run against a volume with one model marked at the wrong commit, one absent.
    import os
    import subprocess
    import sys

    docs = render(chart, FILL)
    check = init(pods(docs)["head"], "check-weights")
    listed = jobs(check)
    for j in listed:
        j["dir"] = str(tmp_path / j["model"])
    (tmp_path / IL25).mkdir()
    (tmp_path / IL25 / ".longctx-revision").write_text("a" * 40 + "\n")
    env = {**os.environ, "LONGCTX_DOWNLOADS": json.dumps(listed)}
    run = subprocess.run([sys.executable, "-c", check["args"][0]], env=env, capture_output=True, text=True)
    assert run.returncode == 1
    assert f"model {IL25}: {tmp_path / IL25} holds {'a' * 40}, expected internlm/{IL25}@{PINNED[IL25]['revision']}" \
        in run.stderr
    assert f"model {IL3}: {tmp_path / IL3} holds no finished download" in run.stderr
    for j in listed:
        (tmp_path / j["model"]).mkdir(exist_ok=True)
        (tmp_path / j["model"] / ".longctx-revision").write_text(j["revision"] + "\n")
    run = subprocess.run([sys.executable, "-c", check["args"][0]], env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "weights present" in run.stdout


@pytest.mark.parametrize("values", [DOWNLOAD, FILL], ids=["download", "fill"])
def test_the_weights_objects_validate_against_kubernetes_and_kuberay(chart, values, rayservice_schema):
    import jsonschema
    import kubernetes_validate

    from tests.helm import kuberay_validation
    from tests.helm.rendering import K8S_VERSION

    docs = render(chart, values)
    for doc in docs:
        clean = {k: v for k, v in doc.items() if k != "__template"}
        if doc["kind"] in {"Job", "PersistentVolumeClaim"}:
            kubernetes_validate.validate(clean, K8S_VERSION, strict=True)
        if doc["kind"] == "RayService":
            jsonschema.validate(clean, rayservice_schema)
            kuberay_validation.check(clean)


def test_notes_say_which_job_the_pods_wait_for(chart):
    notes = chart.render(FILL, name="lc", namespace="llm")["longctx-cluster/templates/NOTES.txt"]
    job = the(render(chart, FILL), "Job")["metadata"]["name"]
    assert f"kubectl -n llm wait --for=condition=complete job/{job} --timeout=2h" in notes
    assert "fill-weights" not in chart.render({}, name="lc", namespace="llm")["longctx-cluster/templates/NOTES.txt"]
