"""Cold time to first token of a pool at its band maximum, from FLOPs and the GPU's rate.

A cold prefill of N tokens costs about

    FLOPs = 2 x P_nonembed x N  +  2 x layers x hidden x N^2

(the matrix products of every weight outside the embeddings, plus causal
attention: QK^T and AV, half of the N x N scores each). One replica runs it at
``tensor_parallel_size x peak x UTILIZATION``, with ``peak`` the GPU's dense
bf16 rate. UTILIZATION = 0.55 is measured: InternLM2.5-7B on one H200 prefilled
458,751 tokens in 113 s (0.55 of 989 TFLOP/s by this formula) and 131,072 in
11.0 s (0.58). Tensor parallelism is assumed to scale linearly, which makes the
estimate optimistic by the all-reduce time; on CPU, or a GPU not in the table,
there is no estimate.

The estimate drives the start-up warning (a pool timeout shorter than its
prefill) and the pools' Serve health-check defaults (deployments/engines.py).
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Mapping

from cluster.config import ClusterConfig, PoolConfig
from cluster.planner.architecture import Architecture, resolve_architecture
from cluster.planner.base import PlanError

# Dense bf16 peak of one GPU (TFLOP/s, without sparsity), keyed by accelerator_type.
PEAK_BF16_TFLOPS: Mapping[str, float] = MappingProxyType(
    {"A100-40G": 312.0, "A100-80G": 312.0, "H100": 989.0, "H200": 989.0}
)
UTILIZATION = 0.55
# Ray Serve's own defaults; derived values never go below them.
SERVE_HEALTH_PERIOD_S = 10.0
SERVE_HEALTH_TIMEOUT_S = 30.0
HEALTH_TIMEOUT_MARGIN = 1.5


def nonembedding_params(arch: Architecture) -> int:
    embeddings = arch.vocab_size * arch.hidden_size * (1 if arch.tie_word_embeddings else 2)
    return arch.params - embeddings


def prefill_flops(arch: Architecture, tokens: int) -> float:
    return 2.0 * nonembedding_params(arch) * tokens + 2.0 * arch.num_layers * arch.hidden_size * tokens**2


def prefill_s(cluster: ClusterConfig, pool: PoolConfig, tokens: int) -> float | None:
    """Seconds for one of the pool's replicas to prefill ``tokens`` cold; None if unknown."""
    if cluster.device != "gpu" or pool.accelerator_type not in PEAK_BF16_TFLOPS:
        return None
    try:
        arch = resolve_architecture(pool.model, cluster.models[pool.model])
    except PlanError:
        return None
    rate = pool.engine.tensor_parallel_size * PEAK_BF16_TFLOPS[pool.accelerator_type] * 1e12 * UTILIZATION
    return prefill_flops(arch, tokens) / rate


def cold_ttft_s(cluster: ClusterConfig, pool: PoolConfig) -> float | None:
    """Seconds to prefill the pool's band maximum from an empty cache; None if unknown."""
    return prefill_s(cluster, pool, pool.max_tokens)


def pool_timeout_s(cluster: ClusterConfig, pool: PoolConfig) -> float:
    return pool.request_timeout_s or cluster.ingress.request_timeout_s


def timeout_warnings(cluster: ClusterConfig) -> list[str]:
    """One line per pool whose first-token timeout is shorter than its cold prefill."""
    lines = []
    for pool in cluster.pools:
        estimate = cold_ttft_s(cluster, pool)
        timeout = pool_timeout_s(cluster, pool)
        if estimate is not None and timeout < estimate:
            lines.append(
                f"pool {pool.name}: request_timeout_s {timeout:g} s is shorter than the estimated cold "
                f"prefill of its band maximum ({pool.max_tokens:,} tokens on {pool.engine.tensor_parallel_size} "
                f"x {pool.accelerator_type}: ~{estimate:.0f} s); such requests will time out with 504"
            )
    return lines


def health_check_settings(cluster: ClusterConfig, pool: PoolConfig) -> tuple[float, float]:
    """Serve's (health_check_period_s, health_check_timeout_s) for the pool's replicas.

    Configured values win. Otherwise the timeout is 1.5 x the cold-TTFT estimate
    and the period a third of it (never below Serve's defaults, 10 s and 30 s),
    so a replica whose event loop is slowed by its longest prefill is neither
    declared unhealthy nor restarted.
    """
    estimate = cold_ttft_s(cluster, pool) or 0.0
    timeout = pool.health_check_timeout_s or max(SERVE_HEALTH_TIMEOUT_S, math.ceil(HEALTH_TIMEOUT_MARGIN * estimate))
    period = pool.health_check_period_s or max(SERVE_HEALTH_PERIOD_S, math.ceil(timeout / 3))
    return float(period), float(timeout)
