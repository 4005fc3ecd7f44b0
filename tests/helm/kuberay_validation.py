"""KubeRay v1.7.0's own checks of a RayService, ported to Python for the chart tests.

The RayService CRD's OpenAPI schema (tests/helm/test_chart.py) is only the
first gate: the operator then runs ValidateRayServiceMetadata and
ValidateRayServiceSpec (which calls ValidateRayClusterSpec) on every
reconcile, and a RayService that fails is marked ValidationFailed and never
starts. Those rules live in Go, in ray-project/kuberay at tag v1.7.0,
ray-operator/controllers/ray/utils/validation.go ("validation.go" below), with helpers in
utils/util.go. Every rule the chart can reach is ported here as one function
whose docstring names the Go function it comes from; a few more come from
where KubeRay builds objects from the spec (common/pod.go, common/service.go)
or from its RayCluster webhook, and say so.

Feature gates are those of v1.7.0's defaults (pkg/features/features.go), as
an operator installed from KubeRay's chart runs. `violations(rayservice)`
returns every rule's messages (KubeRay stops at the first; all of them are
more use in a test failure); `check(rayservice)` raises with them.
"""

from __future__ import annotations

from tests.helm import kuberay_cluster_rules as cluster_rules
from tests.helm import kubernetes_names as names
from tests.helm import kuberay_spec as spec

# --- ValidateRayServiceMetadata ------------------------------------------------------


def rayservice_name(rs: dict) -> list[str]:
    """validation.go ValidateRayServiceMetadata: at most MaxRayServiceNameLength (47) characters and a
    DNS-1035 label (the RayCluster is named <name>-<5 random>, its serve Service <that>-serve-svc)."""
    name = rs["metadata"]["name"]
    errs = [f"RayService name should be no more than {spec.MAX_RAYSERVICE_NAME} characters"] \
        if len(name) > spec.MAX_RAYSERVICE_NAME else []
    return errs + [f"RayService name should be a valid DNS1035 label: {e}" for e in names.dns1035_label(name)]


def initializing_timeout(rs: dict) -> list[str]:
    """validation.go validateInitializingTimeout (from ValidateRayServiceMetadata): ray.io/initializing-timeout
    is a positive Go duration or a positive integer of seconds."""
    value = (rs["metadata"].get("annotations") or {}).get(spec.INITIALIZING_TIMEOUT_ANNOTATION)
    if not value:
        return []
    try:
        seconds = names.go_duration_seconds(value)
    except ValueError:
        try:
            seconds = int(value)
        except ValueError:
            return [f"annotation {spec.INITIALIZING_TIMEOUT_ANNOTATION} has invalid format: {value}"]
    return [] if seconds > 0 else [f"annotation {spec.INITIALIZING_TIMEOUT_ANNOTATION} must be positive, got {value}"]


# --- ValidateRayServiceSpec -----------------------------------------------------------


def no_k8s_token_auth(rs: dict) -> list[str]:
    """validation.go ValidateRayServiceSpec: authOptions.enableK8sTokenAuth is not supported for RayService."""
    if (spec.cluster_of(rs).get("authOptions") or {}).get("enableK8sTokenAuth"):
        return ["K8s token auth mode is currently not supported for RayService"]
    return []


def head_service_unnamed(rs: dict) -> list[str]:
    """validation.go ValidateRayServiceSpec: headGroupSpec.headService.metadata.name should not be set."""
    head_service = spec.cluster_of(rs)["headGroupSpec"].get("headService") or {}
    if (head_service.get("metadata") or {}).get("name"):
        return ["spec.rayClusterConfig.headGroupSpec.headService.metadata.name should not be set"]
    return []


def upgrade_strategy_type(rs: dict) -> list[str]:
    """validation.go ValidateRayServiceSpec: upgradeStrategy.type is NewClusterWithIncrementalUpgrade,
    NewCluster or None."""
    kind = (rs["spec"].get("upgradeStrategy") or {}).get("type")
    if kind is not None and kind not in spec.UPGRADE_TYPES:
        return [f"Spec.UpgradeStrategy.Type value {kind} is invalid, valid options are "
                + ", ".join(spec.UPGRADE_TYPES)]
    return []


def deletion_delay(rs: dict) -> list[str]:
    """validation.go ValidateRayServiceSpec: rayClusterDeletionDelaySeconds is a non-negative integer."""
    delay = rs["spec"].get("rayClusterDeletionDelaySeconds")
    if delay is not None and (not isinstance(delay, int) or delay < 0):
        return [f"Spec.RayClusterDeletionDelaySeconds should be a non-negative integer, got {delay}"]
    return []


def cluster_upgrade_options(rs: dict) -> list[str]:
    """validation.go ValidateClusterUpgradeOptions (from ValidateRayServiceSpec when the type is
    NewClusterWithIncrementalUpgrade): the autoscaler on; clusterUpgradeOptions set;
    maxSurgePercent (CRD default 100) and stepSizePercent in [0, 100], step <= surge;
    intervalSeconds > 0; a gatewayClassName (KubeRay creates a Gateway of that class and an
    HTTPRoute, so the Gateway API CRDs and a controller for the class must be installed)."""
    if not spec.incremental_upgrade(rs):
        return []
    if not spec.autoscaling_enabled(rs):
        return ["Ray Autoscaler is required for NewClusterWithIncrementalUpgrade"]
    options = rs["spec"]["upgradeStrategy"].get("clusterUpgradeOptions")
    if options is None:
        return ["ClusterUpgradeOptions are required for NewClusterWithIncrementalUpgrade"]
    surge = options.get("maxSurgePercent", 100)
    step = options.get("stepSizePercent")
    interval = options.get("intervalSeconds")
    if not 0 <= surge <= 100:
        return ["maxSurgePercent must be between 0 and 100"]
    if step is None or not 0 <= step <= 100:
        return ["stepSizePercent must be between 0 and 100"]
    if step > surge:
        return ["stepSizePercent must be less than or equal to maxSurgePercent"]
    if interval is None or interval <= 0:
        return ["intervalSeconds must be greater than 0"]
    if not options.get("gatewayClassName"):
        return ["gatewayClassName is required for NewClusterWithIncrementalUpgrade"]
    return []


def raycluster_upgrade_strategy(rs: dict) -> list[str]:
    """validation.go ValidateRayClusterUpgradeOptions (the RayCluster controller, on the cluster
    KubeRay creates from rayClusterConfig): a RayCluster created by a RayService takes no
    upgradeStrategy of its own; the RayService's spec.upgradeStrategy is the one."""
    strategy = spec.cluster_of(rs).get("upgradeStrategy") or {}
    if strategy.get("type") is not None:
        return ["upgradeStrategy cannot be set when RayCluster is created by RayService "
                "(set spec.upgradeStrategy instead)"]
    return []


def serve_service_ports(rs: dict) -> list[str]:
    """common/service.go BuildServeService (RayService): without a head container port named
    `serve` (or `serve-*`) and without spec.serveService, no serve Service is built; of a
    custom serveService's ports KubeRay keeps only those named like a head serve port (it
    merges by name), so any other port silently vanishes."""
    head_ports = {p.get("name", "") for p in spec.head_container(rs).get("ports") or []}
    serve_ports = {n for n in head_ports if n == "serve" or n.startswith("serve-")}
    service = rs["spec"].get("serveService")
    if not serve_ports and service is None:
        return ["Please specify a port named 'serve' (or with the prefix 'serve-') in the Ray head container"]
    if service is None or not serve_ports:
        return []
    dropped = [p.get("name") for p in (service.get("spec") or {}).get("ports") or []
               if p.get("name") not in serve_ports]
    return [f"serveService port {n!r} matches no head serve port; KubeRay drops it" for n in dropped]




# --- all of them ----------------------------------------------------------------------------

# In the order KubeRay runs them: metadata, then ValidateRayServiceSpec (which calls
# ValidateRayClusterSpec first), then what the controller meets while building objects.
RULES: tuple[spec.Rule, ...] = (
    rayservice_name,
    initializing_timeout,
    no_k8s_token_auth,
    cluster_rules.group_containers,
    cluster_rules.group_resources,
    cluster_rules.group_labels,
    cluster_rules.worker_replica_bounds,
    cluster_rules.worker_idle_timeout,
    cluster_rules.worker_priority,
    cluster_rules.gcs_ft_configuration,
    cluster_rules.gcs_ft_backend,
    cluster_rules.suspended_groups,
    cluster_rules.autoscaler_v2_env,
    cluster_rules.autoscaler_v2_restart_policy,
    cluster_rules.autoscaler_options,
    cluster_rules.auth_options,
    cluster_rules.feature_gated_fields,
    head_service_unnamed,
    upgrade_strategy_type,
    deletion_delay,
    cluster_upgrade_options,
    raycluster_upgrade_strategy,
    cluster_rules.worker_group_names,
    cluster_rules.gcs_ft_redis_address,
    serve_service_ports,
)


def violations(rayservice: dict) -> list[str]:
    """Every rule's complaints about a RayService (a dict as rendered), `rule: message` each."""
    if rayservice.get("kind") != "RayService":
        raise ValueError(f"not a RayService: {rayservice.get('kind')}")
    return [f"{rule.__name__}: {message}" for rule in RULES for message in rule(rayservice)]


def check(rayservice: dict) -> None:
    """Raise AssertionError listing what KubeRay v1.7.0 would refuse in this RayService."""
    found = violations(rayservice)
    if found:
        raise AssertionError("KubeRay v1.7.0 would refuse RayService "
                             f"{rayservice['metadata']['name']}:\n  " + "\n  ".join(found))
