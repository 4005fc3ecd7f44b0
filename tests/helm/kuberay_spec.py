"""What KubeRay v1.7.0's validation reads of a RayService, and its constants.

Shared by tests/helm/kuberay_validation.py (the RayService rules) and
tests/helm/kuberay_cluster_rules.py (the RayCluster spec rules). Names in
docstrings are ray-project/kuberay v1.7.0's, under ray-operator/controllers/ray/.
"""

from __future__ import annotations

from collections.abc import Callable

VALIDATION_GO = "ray-operator/controllers/ray/utils/validation.go"  # at tag v1.7.0
# pkg/features/features.go, defaultFeatureGates at v1.7.0.
FEATURE_GATES = {
    "RayJobDeletionPolicy": True,
    "RayServiceIncrementalUpgrade": True,
    "RayClusterNetworkPolicy": False,
    "GCSFaultToleranceEmbeddedStorage": False,
    "RayClusterMTLS": False,
    "RayClusterHistoryServer": False,
}
# utils/constant.go
MAX_RAYCLUSTER_NAME = 53
MAX_RAYSERVICE_NAME = MAX_RAYCLUSTER_NAME - 6  # GenerateRayClusterName appends "-" + 5 characters
FT_ANNOTATION = "ray.io/ft-enabled"
EXTERNAL_STORAGE_NS_ANNOTATION = "ray.io/external-storage-namespace"
INITIALIZING_TIMEOUT_ANNOTATION = "ray.io/initializing-timeout"
AUTOSCALER_V2_ENV = "RAY_enable_autoscaler_v2"
UPGRADE_TYPES = ("NewClusterWithIncrementalUpgrade", "NewCluster", "None")
INCREMENTAL = "NewClusterWithIncrementalUpgrade"

Rule = Callable[[dict], list[str]]


def cluster_of(rs: dict) -> dict:
    """spec.rayClusterConfig, the RayClusterSpec."""
    return rs["spec"]["rayClusterConfig"]


def workers(rs: dict) -> list[dict]:
    """spec.rayClusterConfig.workerGroupSpecs."""
    return cluster_of(rs).get("workerGroupSpecs") or []


def groups(rs: dict) -> list[tuple[str, dict]]:
    """(name, group) of the head ("Head", as KubeRay's messages call it) and of every worker group."""
    return [("Head", cluster_of(rs)["headGroupSpec"])] + [(g.get("groupName", ""), g) for g in workers(rs)]


def containers(group: dict) -> list[dict]:
    """A group's pod template containers."""
    return ((group.get("template") or {}).get("spec") or {}).get("containers") or []


def head_container(rs: dict) -> dict:
    """The head's Ray container (utils.RayContainerIndex == 0), {} when there is none."""
    found = containers(cluster_of(rs)["headGroupSpec"])
    return found[0] if found else {}


def env(container: dict, name: str) -> dict | None:
    """utils.EnvVarByName / EnvVarExists."""
    return next((e for e in container.get("env") or [] if e.get("name") == name), None)


def env_true(container: dict, name: str) -> bool:
    """The env var is set to "1" or "true", as KubeRay reads RAY_enable_autoscaler_v2."""
    var = env(container, name)
    return var is not None and var.get("value") in ("1", "true")


def autoscaling_enabled(rs: dict) -> bool:
    """util.go IsAutoscalingEnabled."""
    return bool(cluster_of(rs).get("enableInTreeAutoscaling"))


def autoscaling_v2_enabled(rs: dict) -> bool:
    """util.go IsAutoscalingV2Enabled: autoscalerOptions.version is v2."""
    return (cluster_of(rs).get("autoscalerOptions") or {}).get("version") == "v2"


def gcs_ft_enabled(rs: dict) -> bool:
    """util.go IsGCSFaultToleranceEnabled: the annotation says true, or the options are set."""
    annotation = (rs["metadata"].get("annotations") or {}).get(FT_ANNOTATION)
    return (annotation or "").lower() == "true" or cluster_of(rs).get("gcsFaultToleranceOptions") is not None


def incremental_upgrade(rs: dict) -> bool:
    """util.go IsIncrementalUpgradeEnabled (the feature gate is on by default in v1.7.0)."""
    strategy = rs["spec"].get("upgradeStrategy") or {}
    return FEATURE_GATES["RayServiceIncrementalUpgrade"] and strategy.get("type") == INCREMENTAL


