"""The Kubernetes worker groups a profile needs: one pod per engine replica."""

from __future__ import annotations

from pydantic import Field

from cluster.config import ClusterConfig
from cluster.planner.base import FrozenModel


class WorkerShape(FrozenModel):
    """One Ray worker group: pods that each host one replica of a pool."""

    accelerator: str | None = Field(description="accelerator_type, None on CPU.")
    devices_per_pod: int = Field(description="GPUs (or CPU workers) per pod = TP size.")
    min_replicas: int = Field(description="Sum of the pools' replicas.min.")
    max_replicas: int = Field(description="Sum of the pools' replicas.max.")
    replicas: int = Field(description="Sum of the pools' initial replicas.")
    pools: tuple[str, ...] = Field(description="Pools sharing this shape.")
    kv_tier_memory_gib: int = Field(
        default=0,
        description="Host RAM each pod adds for a KV tier: the largest KVTierConfig.pod_memory_gib "
        "of the shape's pools (any pod may host any of them); also added to its /dev/shm.",
    )


def worker_shapes(cluster: ClusterConfig) -> list[WorkerShape]:
    """The worker groups a Kubernetes deployment needs: one pod per replica.

    The Helm chart derives the same groups in its templates; tests compare the two.
    """
    shapes: dict[tuple[str | None, int], dict] = {}
    for pool in cluster.pools:
        key = (pool.accelerator_type, pool.engine.tensor_parallel_size)
        entry = shapes.setdefault(key, {"min": 0, "max": 0, "initial": 0, "pools": [], "tier": 0})
        replicas = pool.replicas
        entry["min"] += replicas.min
        entry["max"] += replicas.max
        entry["initial"] += replicas.min if replicas.initial is None else replicas.initial
        entry["pools"].append(pool.name)
        if pool.kv_tier is not None:
            entry["tier"] = max(entry["tier"], pool.kv_tier.pod_memory_gib)
    return [
        WorkerShape(
            accelerator=acc, devices_per_pod=tp, min_replicas=e["min"], max_replicas=e["max"],
            replicas=e["initial"], pools=tuple(e["pools"]), kv_tier_memory_gib=e["tier"],
        )
        for (acc, tp), e in shapes.items()
    ]
