"""The KV tier of a pool in numbers: host RAM, documents held, reload time vs prefill.

For a pool with ``kv_tier`` (cluster/config/kv_tier.py), per replica:

* host RAM: ``size_gib`` (vLLM's kv_offloading_size is the total over the TP
  ranks, ``size_gib / tp`` each), and what the pod grows by
  (``KVTierConfig.pod_memory_gib``: the size plus pinned-memory overhead);
* documents of the band's typical size (the middle of the band) and maximum
  size that fit in GPU KV and in the tier: tokens held / document tokens,
  with the KV bytes per token of the whole TP group (what vLLM offloads:
  every rank's share, replicated heads included);
* reload time of a document: the bytes one rank holds of it over that rank's
  own host->GPU link (``host_to_gpu_gb_s``; ranks reload in parallel), against
  its cold prefill from cluster/planner/ttft.py.

Warnings: a tier smaller than the replica's GPU KV holds nothing GPU KV
could not (vLLM offloads what the GPU holds; a smaller tier only keeps a
subset of it); a tier larger than the node's RAM (``node_memory_gib``) cannot
be allocated. vLLM 0.26 pins one private tensor per layer and rank, and
torch's pinned-memory allocator rounds each up to a power of two: the plan
shows that figure and warns when it exceeds what the pod gets (vLLM 0.29
maps one /dev/shm region instead, without rounding).
"""

from __future__ import annotations

from pydantic import Field

from cluster.config import ClusterConfig, PoolConfig
from cluster.planner.architecture import Architecture
from cluster.planner.base import FrozenModel
from cluster.planner.ttft import prefill_s

GIB = 1024**3
GB = 1e9


class TierPlan(FrozenModel):
    """The KV tier of one replica of a pool."""

    backend: str = Field(description="kv_tier.backend.")
    size_gib: float = Field(description="Tier size per replica (vLLM kv_offloading_size).")
    size_gib_per_rank: float = Field(description="Tier held by one tensor-parallel rank.")
    pod_memory_gib: int = Field(description="Host RAM the tier adds to the replica's pod (0: lmcache).")
    pinned_gib_vllm026: float | None = Field(
        description="Host RAM vLLM 0.26 pins for the tier (per-layer tensors rounded to powers of two)."
    )
    tier_tokens: int = Field(description="Tokens of KV the tier holds.")
    gpu_kv_tokens: int = Field(description="Tokens of KV the replica's GPUs hold.")
    typical_doc_tokens: int = Field(description="Typical document: the middle of the band.")
    max_doc_tokens: int = Field(description="Largest document: the band maximum.")
    gpu_docs_typical: int = Field(description="Typical documents GPU KV holds.")
    gpu_docs_max: int = Field(description="Largest documents GPU KV holds.")
    tier_docs_typical: int = Field(description="Typical documents the tier holds.")
    tier_docs_max: int = Field(description="Largest documents the tier holds.")
    host_to_gpu_gb_s: float = Field(description="Effective host->GPU rate per GPU assumed.")
    reload_s_typical: float = Field(description="Reload of a typical document from the tier.")
    reload_s_max: float = Field(description="Reload of the largest document from the tier.")
    prefill_s_typical: float | None = Field(description="Cold prefill of a typical document (None: unknown GPU).")
    prefill_s_max: float | None = Field(description="Cold prefill of the largest document (None: unknown GPU).")
    warnings: tuple[str, ...] = Field(description="Why the tier may not do what it is meant to.")


def _pinned_gib_vllm026(size_gib: float, tp: int, layers: int) -> float:
    per_tensor = size_gib * GIB / (tp * layers)
    rounded = 1 << max(0, int(per_tensor - 1).bit_length())
    return rounded * tp * layers / GIB


def _unrounded_size_gib(size_gib: float, tp: int, layers: int) -> float:
    """The largest size <= size_gib whose per-layer tensors are exact powers of two."""
    per_tensor = int(size_gib * GIB / (tp * layers))
    return (1 << (per_tensor.bit_length() - 1)) * tp * layers / GIB


def plan_tier(
    cluster: ClusterConfig, pool: PoolConfig, arch: Architecture, *,
    tp: int, kv_bytes_per_token_group: int, gpu_kv_tokens: int,
) -> TierPlan | None:
    """The tier plan of ``pool`` at tensor parallelism ``tp``; None without a tier."""
    tier = pool.kv_tier
    if tier is None:
        return None
    low, high = pool.band
    typical = max(1, (low + high) // 2)
    tier_tokens = int(tier.size_gib * GIB // kv_bytes_per_token_group)
    gpu_kv_bytes = gpu_kv_tokens * kv_bytes_per_token_group

    def reload_s(tokens: int) -> float:
        return tokens * kv_bytes_per_token_group / tp / (tier.host_to_gpu_gb_s * GB)

    warnings = []
    if tier.size_gib * GIB < gpu_kv_bytes:
        warnings.append(
            f"tier {tier.size_gib:g} GiB is smaller than the replica's GPU KV "
            f"({gpu_kv_bytes / GIB:.1f} GiB): it holds only part of what the GPU already holds; "
            "size it several times larger or drop it"
        )
    if tier_tokens < high:
        warnings.append(
            f"tier holds {tier_tokens:,} tokens, less than one document of the band maximum "
            f"({high:,}): such documents are never reloaded"
        )
    if cluster.node_memory_gib is not None and tier.pod_memory_gib > cluster.node_memory_gib:
        warnings.append(
            f"tier needs {tier.pod_memory_gib} GiB of host RAM per replica, more than a node's "
            f"{cluster.node_memory_gib:g} GiB (node_memory_gib)"
        )
    sharing = [
        p.name for p in cluster.pools
        if p is not pool and (p.accelerator_type, p.engine.tensor_parallel_size) == (pool.accelerator_type, tp)
    ]
    if sharing and tier.pod_memory_gib:
        # helm/: one worker group per (accelerator, TP); any of its pods may
        # host any of its pools, so every pod is sized for the largest tier.
        warnings.append(
            f"shares its Kubernetes worker group with {sharing}: each of their pods also "
            f"gets +{tier.pod_memory_gib} GiB"
        )
    pinned = _pinned_gib_vllm026(tier.size_gib, tp, arch.num_layers) if tier.backend == "native" else None
    if pinned is not None and pinned > tier.pod_memory_gib:
        warnings.append(
            f"with vLLM 0.26 (pin set gpu-ray2.58) torch rounds the tier's {tp * arch.num_layers} "
            f"pinned tensors up to powers of two: {pinned:g} GiB, more than the pod's "
            f"{tier.pod_memory_gib} GiB for it; choose size_gib = tp x layers x a power of two "
            f"(here {_unrounded_size_gib(tier.size_gib, tp, arch.num_layers):g})"
        )
    return TierPlan(
        backend=tier.backend, size_gib=tier.size_gib, size_gib_per_rank=tier.size_gib / tp,
        pod_memory_gib=tier.pod_memory_gib, pinned_gib_vllm026=pinned, tier_tokens=tier_tokens,
        gpu_kv_tokens=gpu_kv_tokens, typical_doc_tokens=typical, max_doc_tokens=high,
        gpu_docs_typical=gpu_kv_tokens // typical, gpu_docs_max=gpu_kv_tokens // high,
        tier_docs_typical=tier_tokens // typical, tier_docs_max=tier_tokens // high,
        host_to_gpu_gb_s=tier.host_to_gpu_gb_s, reload_s_typical=reload_s(typical),
        reload_s_max=reload_s(high), prefill_s_typical=prefill_s(cluster, pool, typical),
        prefill_s_max=prefill_s(cluster, pool, high), warnings=tuple(warnings),
    )


def replica_capacity_tokens(plan_tier_result: TierPlan | None) -> int | None:
    """Tokens a replica keeps reloadable (GPU KV + tier); None without a tier."""
    if plan_tier_result is None:
        return None
    return plan_tier_result.gpu_kv_tokens + plan_tier_result.tier_tokens
