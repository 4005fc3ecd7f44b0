"""Every pod the chart makes meets the "restricted" Pod Security Standard.

The rules are the Kubernetes documentation's (Pod Security Standards, the
Baseline and Restricted profiles, policy version 1.30), checked on every pod
template of every rendered object: the RayService's head and worker groups as
KubeRay turns them into pods (it adds the autoscaler sidecar and the
wait-gcs-ready init container), StatefulSets, Deployments, Jobs and the
`helm test` Pod. A namespace labelled
pod-security.kubernetes.io/enforce=restricted admits exactly such pods.
"""

from __future__ import annotations

import copy

import pytest

from tests.helm.rendering import CASES, kinds, render

# Baseline: the sysctls a pod may set.
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
# Restricted: the only volume types.
ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                   "projected", "secret"}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def _apparmor_ok(profile: dict | None) -> bool:
    return profile is None or profile.get("type") in {"RuntimeDefault", "Localhost"}


def violations(pod: dict, metadata: dict | None = None) -> list[str]:
    """What a pod spec breaks of the Baseline and Restricted profiles; empty when it passes."""
    found = []
    pod_ctx = pod.get("securityContext") or {}
    containers = [("container", c) for c in pod.get("containers", [])]
    containers += [("initContainer", c) for c in pod.get("initContainers", [])]
    containers += [("ephemeralContainer", c) for c in pod.get("ephemeralContainers", [])]

    # Baseline -------------------------------------------------------------
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            found.append(f"pod: {field}")
    if (pod_ctx.get("windowsOptions") or {}).get("hostProcess"):
        found.append("pod: windowsOptions.hostProcess")
    for sysctl in pod_ctx.get("sysctls") or []:
        if sysctl["name"] not in SAFE_SYSCTLS:
            found.append(f"pod: unsafe sysctl {sysctl['name']}")
    if not _apparmor_ok(pod_ctx.get("appArmorProfile")):
        found.append("pod: appArmorProfile")
    for key, value in ((metadata or {}).get("annotations") or {}).items():
        if key.startswith(APPARMOR_ANNOTATION) and not (value == "runtime/default" or value.startswith("localhost/")):
            found.append(f"pod: AppArmor annotation {key}={value}")
    for where, options in [("pod", pod_ctx.get("seLinuxOptions"))] + [
            (f"{kind} {c['name']}", (c.get("securityContext") or {}).get("seLinuxOptions")) for kind, c in containers]:
        if options and (options.get("type", "") not in SELINUX_TYPES or options.get("user") or options.get("role")):
            found.append(f"{where}: seLinuxOptions")
    for volume in pod.get("volumes") or []:
        kind = next(k for k in volume if k != "name")
        if kind == "hostPath":
            found.append(f"volume {volume['name']}: hostPath")
        elif kind not in ALLOWED_VOLUMES:  # Restricted
            found.append(f"volume {volume['name']}: type {kind}")

    # Pod-level settings the Restricted profile accepts for every container.
    pod_non_root = pod_ctx.get("runAsNonRoot") is True
    pod_seccomp = (pod_ctx.get("seccompProfile") or {}).get("type")
    if pod_ctx.get("runAsUser") == 0:
        found.append("pod: runAsUser 0")
    if pod_seccomp == "Unconfined":
        found.append("pod: seccomp Unconfined")

    for kind, container in containers:
        where = f"{kind} {container['name']}"
        ctx = container.get("securityContext") or {}
        if ctx.get("privileged"):
            found.append(f"{where}: privileged")
        if (ctx.get("windowsOptions") or {}).get("hostProcess"):
            found.append(f"{where}: windowsOptions.hostProcess")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                found.append(f"{where}: hostPort {port['hostPort']}")
        if ctx.get("procMount", "Default") != "Default":
            found.append(f"{where}: procMount {ctx['procMount']}")
        if not _apparmor_ok(ctx.get("appArmorProfile")):
            found.append(f"{where}: appArmorProfile")
        # Restricted ---------------------------------------------------------
        if ctx.get("allowPrivilegeEscalation") is not False:
            found.append(f"{where}: allowPrivilegeEscalation is not false")
        non_root = ctx.get("runAsNonRoot")
        if non_root is False or (non_root is None and not pod_non_root):
            found.append(f"{where}: runAsNonRoot is not true")
        if ctx.get("runAsUser") == 0:
            found.append(f"{where}: runAsUser 0")
        seccomp = (ctx.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in {"RuntimeDefault", "Localhost"}:
            found.append(f"{where}: seccompProfile is {seccomp}")
        capabilities = ctx.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(f"{where}: capabilities do not drop ALL")
        added = set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            found.append(f"{where}: adds capabilities {sorted(added)}")
    return found


def kuberay_pods(rayservice: dict) -> list[tuple[str, dict, dict]]:
    """The RayService's pods as KubeRay v1.7 builds them (ray-operator common/pod.go).

    It puts the autoscaler sidecar into the head pod with
    autoscalerOptions.securityContext, and into each worker pod an init
    container, wait-gcs-ready, with a copy of the Ray container's (the first
    container's) securityContext. Their other fields do not bear on the rules.
    """
    cluster = rayservice["spec"]["rayClusterConfig"]
    pods = []
    head = copy.deepcopy(cluster["headGroupSpec"]["template"])
    if cluster.get("enableInTreeAutoscaling"):
        options = cluster.get("autoscalerOptions") or {}
        head["spec"]["containers"].append(
            {"name": "autoscaler", "securityContext": copy.deepcopy(options.get("securityContext"))})
    pods.append(("head", head["spec"], head.get("metadata") or {}))
    for group in cluster.get("workerGroupSpecs") or []:
        worker = copy.deepcopy(group["template"])
        ray = worker["spec"]["containers"][0]
        worker["spec"].setdefault("initContainers", []).append(
            {"name": "wait-gcs-ready", "securityContext": copy.deepcopy(ray.get("securityContext"))})
        pods.append((f"worker {group['groupName']}", worker["spec"], worker.get("metadata") or {}))
    return pods


def pods_of(docs: list[dict]) -> list[tuple[str, dict, dict]]:
    """(where, pod spec, pod metadata) of every pod-bearing object."""
    found = []
    for doc in docs:
        name = f"{doc['kind']} {doc['metadata']['name']}"
        if doc["kind"] == "RayService":
            found += [(f"{name} {where}", spec, meta) for where, spec, meta in kuberay_pods(doc)]
        elif doc["kind"] == "Pod":
            found.append((name, doc["spec"], doc["metadata"]))
        elif doc["kind"] == "CronJob":
            template = doc["spec"]["jobTemplate"]["spec"]["template"]
            found.append((name, template["spec"], template.get("metadata") or {}))
        elif "template" in (doc.get("spec") or {}) and "containers" in (doc["spec"]["template"].get("spec") or {}):
            # Deployment, StatefulSet, DaemonSet, ReplicaSet, Job
            template = doc["spec"]["template"]
            found.append((name, template["spec"], template.get("metadata") or {}))
    return found


# Any commit will do for a render (the chart refuses a branch, tests/helm/test_weights.py).
PINNED = {"internlm2_5-7b-chat-1m": {"revision": "1" * 40}, "internlm3-8b-instruct": {"revision": "2" * 40}}
# Beyond helm/ci: the init container of weights.source=download, and every
# optional pod the chart can make.
EXTRA_CASES = [
    pytest.param({"weights": {"source": "download", "download": {"models": PINNED}}}, id="weights-download"),
    pytest.param({"weights": {"pvc": {"fill": {"enabled": True}}, "download": {"models": PINNED}}},
                 id="weights-fill"),
    pytest.param({"autoscaler": {"enabled": False}, "auth": {"enabled": False}}, id="no-autoscaler"),
]


@pytest.mark.parametrize("values, case", CASES)
def test_every_rendered_pod_is_restricted(rendered, values, case):
    pods = pods_of(rendered[case])
    assert any("head" in where for where, _, _ in pods) and any("worker" in where for where, _, _ in pods)
    assert [(where, v) for where, spec, meta in pods for v in violations(spec, meta)] == []


@pytest.mark.parametrize("values", EXTRA_CASES)
def test_optional_pods_are_restricted(chart, values):
    pods = pods_of(render(chart, values))
    assert pods
    assert [(where, v) for where, spec, meta in pods for v in violations(spec, meta)] == []


def test_the_pod_kinds_are_all_checked(rendered):
    # The helm test Pod and the RayService's groups at least; a StatefulSet
    # (the documents' Redis) or Job wherever the chart renders one.
    docs = rendered["default"]
    checked = {where.split()[0] for where, _, _ in pods_of(docs)}
    with_pods = {d["kind"] for d in docs if d["kind"] in {"Pod", "RayService", "StatefulSet", "Deployment", "Job",
                                                         "DaemonSet", "CronJob"}}
    assert with_pods <= checked and {"Pod", "RayService"} <= checked


def test_the_weights_init_container_and_kuberays_containers_are_covered(chart):
    docs = render(chart, {"weights": {"source": "download", "download": {"models": PINNED}}})
    (rayservice,) = kinds(docs, "RayService")
    names = {c["name"] for _, spec, _ in kuberay_pods(rayservice)
             for c in spec["containers"] + spec.get("initContainers", [])}
    assert {"ray-head", "ray-worker", "fetch-weights", "autoscaler", "wait-gcs-ready"} <= names


def test_the_image_user_runs_the_pods(rendered):
    (rayservice,) = kinds(rendered["default"], "RayService")
    for _, spec, _ in kuberay_pods(rayservice):
        ctx = spec["securityContext"]
        # The Dockerfile's USER 1000:100 (the ray-llm image's ray user, group users).
        assert (ctx["runAsUser"], ctx["runAsGroup"], ctx["fsGroup"]) == (1000, 100, 100)


def test_an_unhardened_chart_fails(chart):
    # null drops a default map in Helm ({} would merge with it).
    docs = render(chart, {"podSecurityContext": None, "containerSecurityContext": None})
    problems = [v for _, spec, meta in pods_of(docs) for v in violations(spec, meta)]
    assert "container ray-head: allowPrivilegeEscalation is not false" in problems
    assert "container ray-head: runAsNonRoot is not true" in problems
    assert "initContainer wait-gcs-ready: capabilities do not drop ALL" in problems
    assert "container autoscaler: seccompProfile is None" in problems


def test_values_adjust_the_contexts(chart):
    docs = render(chart, {"podSecurityContext": {"runAsNonRoot": True, "runAsUser": 2000, "fsGroup": 2000,
                                                 "seccompProfile": {"type": "RuntimeDefault"}}})
    (rayservice,) = kinds(docs, "RayService")
    head = rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    assert head["securityContext"]["runAsUser"] == 2000


RESTRICTED_POD = {
    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": False,
                                                     "capabilities": {"drop": ["ALL"]}}}],
    "volumes": [{"name": "v", "emptyDir": {}}],
}


def _with(change) -> dict:
    pod = copy.deepcopy(RESTRICTED_POD)
    change(pod)
    return pod


def _ctx(pod) -> dict:
    return pod["containers"][0]["securityContext"]


@pytest.mark.parametrize("change, expected", [
    (lambda p: p.update(hostNetwork=True), "pod: hostNetwork"),
    (lambda p: p.update(hostPID=True), "pod: hostPID"),
    (lambda p: p.update(hostIPC=True), "pod: hostIPC"),
    (lambda p: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "volume h: hostPath"),
    (lambda p: p["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}}), "volume n: type nfs"),
    (lambda p: _ctx(p).update(privileged=True), "container c: privileged"),
    (lambda p: _ctx(p)["capabilities"].update(add=["SYS_ADMIN"]), "container c: adds capabilities ['SYS_ADMIN']"),
    (lambda p: _ctx(p).update(capabilities={}), "container c: capabilities do not drop ALL"),
    (lambda p: p["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 80}]), "container c: hostPort 80"),
    (lambda p: p["securityContext"].update(seccompProfile={"type": "Unconfined"}), "pod: seccomp Unconfined"),
    (lambda p: p["securityContext"].pop("seccompProfile"), "container c: seccompProfile is None"),
    (lambda p: p["securityContext"].pop("runAsNonRoot"), "container c: runAsNonRoot is not true"),
    (lambda p: _ctx(p).update(runAsNonRoot=False), "container c: runAsNonRoot is not true"),
    (lambda p: _ctx(p).update(runAsUser=0), "container c: runAsUser 0"),
    (lambda p: p["securityContext"].update(runAsUser=0), "pod: runAsUser 0"),
    (lambda p: p["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
     "pod: unsafe sysctl kernel.msgmax"),
    (lambda p: _ctx(p).update(procMount="Unmasked"), "container c: procMount Unmasked"),
    (lambda p: _ctx(p).update(appArmorProfile={"type": "Unconfined"}), "container c: appArmorProfile"),
    (lambda p: _ctx(p).update(seLinuxOptions={"type": "spc_t"}), "container c: seLinuxOptions"),
    (lambda p: _ctx(p).pop("allowPrivilegeEscalation"), "container c: allowPrivilegeEscalation is not false"),
    (lambda p: p.setdefault("initContainers", []).append({"name": "i"}),
     "initContainer i: allowPrivilegeEscalation is not false"),
    (lambda p: p["securityContext"].update(windowsOptions={"hostProcess": True}), "pod: windowsOptions.hostProcess"),
])
def test_each_rule_catches_its_violation(change, expected):
    assert violations(RESTRICTED_POD) == []
    assert expected in violations(_with(change))


def test_apparmor_annotations():
    assert violations(RESTRICTED_POD, {"annotations": {APPARMOR_ANNOTATION + "c": "runtime/default"}}) == []
    assert violations(RESTRICTED_POD, {"annotations": {APPARMOR_ANNOTATION + "c": "unconfined"}}) == [
        f"pod: AppArmor annotation {APPARMOR_ANNOTATION}c=unconfined"]
