"""KubeRay v1.7.0's ValidateRayClusterSpec, rule by rule, for the chart tests.

Called by ValidateRayServiceSpec on a RayService's rayClusterConfig; each
function's docstring names the Go function (validation.go: ray-operator/controllers/ray/
utils/validation.go at tag v1.7.0) it is ported from. Assembled, with the
RayService rules, in tests/helm/kuberay_validation.py.
"""

from __future__ import annotations

from tests.helm import kubernetes_names as names
from tests.helm import kuberay_spec as spec

# --- ValidateRayClusterSpec: groups -------------------------------------------------------


def group_containers(rs: dict) -> list[str]:
    """validation.go ValidateRayClusterSpec: the head group and every worker group have a container."""
    return [f"{'headGroupSpec' if name == 'Head' else f'workerGroupSpec {name}'} should have at least one container"
            for name, group in spec.groups(rs) if not spec.containers(group)]


def group_resources(rs: dict) -> list[str]:
    """validation.go validateRayGroupResources: a group sets Ray resources in rayStartParams (num-cpus,
    num-gpus, memory, resources) or in its `resources` field, not both."""
    errs = []
    for name, group in spec.groups(rs):
        params = group.get("rayStartParams") or {}
        if any(params.get(k) for k in ("num-cpus", "num-gpus", "memory", "resources")) and group.get("resources"):
            errs.append(f"resource fields should not be set in both rayStartParams and Resources for {name} group")
    return errs


def group_labels(rs: dict) -> list[str]:
    """validation.go validateRayGroupLabels: no rayStartParams['labels']; the group's `labels` are valid
    Kubernetes label keys (IsQualifiedName) and values (IsValidLabelValue)."""
    errs = []
    for name, group in spec.groups(rs):
        if "labels" in (group.get("rayStartParams") or {}):
            errs.append(f"rayStartParams['labels'] is not supported for {name} group")
        for key, value in (group.get("labels") or {}).items():
            errs += [f"invalid label key for {name} group: {key!r}: {e}" for e in names.qualified_name(key)]
            errs += [f"invalid label value for {key!r} in {name} group: {e}" for e in names.label_value(str(value))]
    return errs


def worker_group_names(rs: dict) -> list[str]:
    """pkg/webhooks/v1/raycluster_webhook.go validateWorkerGroups: group names are unique; and
    common/pod.go puts each group's name in its pods' `ray.io/group` label, so it must be a valid
    label value (at most 63 characters) or the API server refuses every pod of the group."""
    seen: set[str] = set()
    errs = []
    for group in spec.workers(rs):
        name = group.get("groupName", "")
        if name in seen:
            errs.append(f"worker group names must be unique: {name}")
        seen.add(name)
        errs += [f"worker group {name!r} as label ray.io/group: {e}" for e in names.label_value(name)]
    return errs


def worker_replica_bounds(rs: dict) -> list[str]:
    """validation.go ValidateRayClusterSpec: without the autoscaler a group sets minReplicas and maxReplicas;
    neither is negative; minReplicas <= maxReplicas."""
    errs = []
    for group in spec.workers(rs):
        name, low, high = group.get("groupName"), group.get("minReplicas"), group.get("maxReplicas")
        if not spec.autoscaling_enabled(rs) and (low is None or high is None):
            errs.append(f"worker group {name} must set both minReplicas and maxReplicas when autoscaling is disabled")
        if low is not None and low < 0:
            errs.append(f"worker group {name} has negative minReplicas {low}")
        if high is not None and high < 0:
            errs.append(f"worker group {name} has negative maxReplicas {high}")
        if low is not None and high is not None and low > high:
            errs.append(f"worker group {name} has minReplicas {low} greater than maxReplicas {high}")
    return errs


def worker_idle_timeout(rs: dict) -> list[str]:
    """validation.go validateWorkerGroupIdleTimeout: a group's idleTimeoutSeconds is non-negative and needs
    autoscaler v2 (autoscalerOptions.version v2, or RAY_enable_autoscaler_v2 1/true on the head)."""
    v2 = spec.autoscaling_v2_enabled(rs) or spec.env_true(spec.head_container(rs), spec.AUTOSCALER_V2_ENV)
    errs = []
    for group in spec.workers(rs):
        timeout = group.get("idleTimeoutSeconds")
        if timeout is None:
            continue
        if timeout < 0:
            errs.append(f"worker group {group.get('groupName')}: idleTimeoutSeconds must be non-negative")
        elif not v2:
            errs.append(f"worker group {group.get('groupName')}: idleTimeoutSeconds is set, but autoscaler "
                        "v2 is not enabled. Please set .spec.autoscalerOptions.version to 'v2'")
    return errs


def worker_priority(rs: dict) -> list[str]:
    """validation.go validateWorkerGroupPriority: a non-zero priority needs rayVersion >= 2.56.0 and
    autoscaler v2."""
    errs = []
    for group in spec.workers(rs):
        if not group.get("priority"):
            continue
        name = group.get("groupName")
        try:
            too_old = names.generic_version(spec.cluster_of(rs).get("rayVersion") or "") < (2, 56, 0)
        except ValueError:
            errs.append(f"worker group {name}: priority is set, but RayVersion is missing or invalid")
            continue
        if too_old:
            errs.append(f"worker group {name}: priority is set, but minimum Ray version is 2.56.0")
        elif not (spec.autoscaling_v2_enabled(rs) or spec.env_true(spec.head_container(rs), spec.AUTOSCALER_V2_ENV)):
            errs.append(f"worker group {name}: priority is set, but autoscaler v2 is not enabled")
    return errs


def suspended_groups(rs: dict) -> list[str]:
    """validation.go ValidateRayClusterSpec: a suspended worker group needs the RayJobDeletionPolicy gate
    (on by default) and is refused with the autoscaler on."""
    errs = []
    for group in spec.workers(rs):
        if not group.get("suspend"):
            continue
        if not spec.FEATURE_GATES["RayJobDeletionPolicy"]:
            errs.append(f"worker group {group.get('groupName')} can be suspended only with RayJobDeletionPolicy")
        elif spec.autoscaling_enabled(rs):
            errs.append(f"worker group {group.get('groupName')} cannot be suspended with Autoscaler enabled")
    return errs


# --- ValidateRayClusterSpec: autoscaler ---------------------------------------------------


def autoscaler_v2_env(rs: dict) -> list[str]:
    """validation.go ValidateRayClusterSpec: RAY_enable_autoscaler_v2 is not 1/true on the head
    without enableInTreeAutoscaling; with it, not set at all when autoscalerOptions.version is."""
    head = spec.head_container(rs)
    if not spec.autoscaling_enabled(rs):
        if spec.env_true(head, spec.AUTOSCALER_V2_ENV):
            return [f"{spec.AUTOSCALER_V2_ENV} cannot be set when enableInTreeAutoscaling is false"]
        return []
    options = spec.cluster_of(rs).get("autoscalerOptions") or {}
    if options.get("version") is not None and spec.env(head, spec.AUTOSCALER_V2_ENV) is not None:
        return [f"both .spec.autoscalerOptions.version and head Pod env var {spec.AUTOSCALER_V2_ENV} are set"]
    return []


def autoscaler_v2_restart_policy(rs: dict) -> list[str]:
    """validation.go ValidateRayClusterSpec: with autoscaler v2, every pod's restartPolicy is Never or unset."""
    if not (spec.autoscaling_enabled(rs) and spec.autoscaling_v2_enabled(rs)):
        return []
    groups = [("head Pod", spec.cluster_of(rs)["headGroupSpec"])] + [
        (f"worker group {g.get('groupName')}", g) for g in spec.workers(rs)]
    return [f"restartPolicy for {name} should be Never or unset when using autoscaler V2"
            for name, group in groups
            if (group.get("template") or {}).get("spec", {}).get("restartPolicy") not in (None, "", "Never")]


def autoscaler_options(rs: dict) -> list[str]:
    """validation.go ValidateRayClusterSpec: autoscalerOptions.idleTimeoutSeconds is non-negative,
    and autoscalerOptions.env does not set KUBERAY_GEN_AUTOSCALER_START_CMD (KubeRay's own)."""
    options = spec.cluster_of(rs).get("autoscalerOptions") or {}
    errs = []
    if (options.get("idleTimeoutSeconds") or 0) < 0:
        errs.append("autoscalerOptions.idleTimeoutSeconds must be non-negative")
    if any(e.get("name") == "KUBERAY_GEN_AUTOSCALER_START_CMD" for e in options.get("env") or []):
        errs.append("autoscalerOptions.env must not contain KUBERAY_GEN_AUTOSCALER_START_CMD")
    return errs


# --- ValidateRayClusterSpec: GCS fault tolerance --------------------------------------------


def gcs_ft_configuration(rs: dict) -> list[str]:
    """validation.go ValidateRayClusterSpec: not both the ray.io/ft-enabled annotation and
    gcsFaultToleranceOptions; RAY_REDIS_ADDRESS on the head only with GCS FT on; with the
    options, Redis' address, password and namespace come from them only (no redis-password in
    rayStartParams, no REDIS_PASSWORD or RAY_REDIS_ADDRESS env, no
    ray.io/external-storage-namespace annotation); redis-username never outside the options."""
    cluster = spec.cluster_of(rs)
    annotations = rs["metadata"].get("annotations") or {}
    options = cluster.get("gcsFaultToleranceOptions")
    head = spec.head_container(rs)
    params = cluster["headGroupSpec"].get("rayStartParams") or {}
    errs = []
    if annotations.get(spec.FT_ANNOTATION) and options is not None:
        errs.append(f"{spec.FT_ANNOTATION} annotation and GcsFaultToleranceOptions are both set")
    if not spec.gcs_ft_enabled(rs) and spec.env(head, "RAY_REDIS_ADDRESS") is not None:
        errs.append("RAY_REDIS_ADDRESS is set which implicitly enables GCS fault tolerance, "
                    "but GcsFaultToleranceOptions is not set")
    if options is not None:
        if params.get("redis-password"):
            errs.append("cannot set `redis-password` in rayStartParams when GcsFaultToleranceOptions is enabled")
        for name in ("REDIS_PASSWORD", "RAY_REDIS_ADDRESS"):
            if spec.env(head, name) is not None:
                errs.append(f"cannot set `{name}` env var in head Pod when GcsFaultToleranceOptions is enabled")
        if annotations.get(spec.EXTERNAL_STORAGE_NS_ANNOTATION):
            errs.append(f"cannot set `{spec.EXTERNAL_STORAGE_NS_ANNOTATION}` annotation when "
                        "GcsFaultToleranceOptions is enabled")
    if params.get("redis-username") or spec.env(head, "REDIS_USERNAME") is not None:
        errs.append("cannot set redis username in rayStartParams or environment variables")
    return errs


def gcs_ft_backend(rs: dict) -> list[str]:
    """validation.go validateGcsFaultToleranceBackend: the embedded `rocksdb` backend needs the
    GCSFaultToleranceEmbeddedStorage gate (off by default); the `redis` backend takes no
    `storage`."""
    options = spec.cluster_of(rs).get("gcsFaultToleranceOptions")
    if options is None:
        return []
    if options.get("backend") == "rocksdb":
        if not spec.FEATURE_GATES["GCSFaultToleranceEmbeddedStorage"]:
            return ["the embedded RocksDB GCS fault tolerance backend requires the "
                    "GCSFaultToleranceEmbeddedStorage feature gate"]
        return []
    if options.get("storage") is not None:
        return ["cannot set GcsFaultToleranceOptions.Storage when backend is 'redis'"]
    return []


def gcs_ft_redis_address(rs: dict) -> list[str]:
    """common/pod.go configureRedisFT: KubeRay copies gcsFaultToleranceOptions.redisAddress
    verbatim into the head's RAY_REDIS_ADDRESS, so with the redis backend an empty address
    starts a GCS that cannot reach its store; and a password is a value or a valueFrom."""
    options = spec.cluster_of(rs).get("gcsFaultToleranceOptions")
    if options is None or options.get("backend") == "rocksdb":
        return []
    errs = [] if options.get("redisAddress") else ["gcsFaultToleranceOptions.redisAddress is empty"]
    password = options.get("redisPassword")
    if password is not None and not (password.get("value") or password.get("valueFrom")):
        errs.append("gcsFaultToleranceOptions.redisPassword has neither value nor valueFrom")
    return errs


# --- ValidateRayClusterSpec: auth and feature-gated fields ---------------------------------


def auth_options(rs: dict) -> list[str]:
    """validation.go ValidateRayClusterSpec: authOptions.mode token needs rayVersion >= 2.52.0
    (parsed as version.ParseGeneric); enableK8sTokenAuth needs token mode, Ray >= 2.55.0 and
    no secretName."""
    cluster = spec.cluster_of(rs)
    auth = cluster.get("authOptions") or {}
    k8s = bool(auth.get("enableK8sTokenAuth"))
    if auth.get("mode") != "token":
        return ["authOptions.enableK8sTokenAuth is enabled but authOptions.mode not set to 'token'"] if k8s else []
    if not cluster.get("rayVersion"):
        return ["authOptions.mode is 'token' but RayVersion was not specified"]
    try:
        version = names.generic_version(cluster["rayVersion"])
    except ValueError as err:
        return [f"authOptions.mode is 'token' but RayVersion format is invalid: {err}"]
    if version < (2, 52, 0):
        return [f"authOptions.mode is 'token' but minimum Ray version is 2.52.0, got {cluster['rayVersion']}"]
    if k8s and version < (2, 55, 0):
        return ["authOptions.enableK8sTokenAuth is enabled but minimum Ray version is 2.55.0"]
    if k8s and auth.get("secretName"):
        return ["authOptions.enableK8sTokenAuth is enabled and authOptions.secretName is also set"]
    return []


def feature_gated_fields(rs: dict) -> list[str]:
    """validation.go ValidateRayClusterSpec: historyServerOptions, networkPolicy and tlsOptions
    need the RayClusterHistoryServer, RayClusterNetworkPolicy and RayClusterMTLS gates, all off
    in a default v1.7.0 operator."""
    cluster = spec.cluster_of(rs)
    gated = {"historyServerOptions": "RayClusterHistoryServer", "networkPolicy": "RayClusterNetworkPolicy",
             "tlsOptions": "RayClusterMTLS"}
    return [f"spec.{field} requires the {gate} feature gate to be enabled"
            for field, gate in gated.items()
            if cluster.get(field) is not None and not spec.FEATURE_GATES[gate]]
