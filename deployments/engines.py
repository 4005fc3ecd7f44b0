"""Pool -> Ray Serve LLM engine deployment.

Each pool becomes one ``LLMServer`` deployment from ``ray.serve.llm``: it
already maps tensor_parallel_size to a Ray placement group, runs vLLM, streams
OpenAI responses and exports vLLM's metrics, so the project writes no engine
wrapper of its own.
"""

from __future__ import annotations

import logging
from typing import Any

from cluster.config import ClusterConfig, PoolConfig
from cluster.planner import PlanError, plan_pool
from cluster.planner.kv_tier import replica_capacity_tokens
from cluster.planner.ttft import health_check_settings
from deployments import rope
from deployments.kv_tier import tier_engine_kwargs
from deployments.routing.replica_routers import request_router_config
from deployments.serve_options import pool_serve_options

POOL_DEPLOYMENT_PREFIX = "pool-"

logger = logging.getLogger(__name__)


def pool_deployment_name(pool_name: str) -> str:
    return f"{POOL_DEPLOYMENT_PREFIX}{pool_name}"


def placement_bundles(pool: PoolConfig, device: str) -> list[dict[str, float]]:
    """One bundle per tensor-parallel worker."""
    default = {"GPU": 1.0} if device == "gpu" else {"CPU": 1.0}
    worker = dict(pool.worker_resources or default)
    return [dict(worker) for _ in range(pool.engine.tensor_parallel_size)]


def model_runner_env(device: str) -> dict[str, str]:
    """Keep GPU engines on a model runner the per-request rotary hook follows.

    vLLM picks its V2 GPU model runner by default for some models; where the
    installed vLLM's V2 runner is not one deployments/rope/runner_hook.py
    follows (vLLM 0.26, the Ray 2.58 set), its V1 runner is (the layout the
    CPU backend runs too), so the engines are told to use it instead of
    failing at start. A pool's own ``env`` still wins.
    """
    if device != "gpu":
        return {}
    from deployments.rope.runner_hook import v2_runner_problem

    try:
        problem = v2_runner_problem()
    except Exception as exc:  # noqa: BLE001 - the app may be built where vLLM's GPU runner cannot import
        # (a GPU-less head pod); the engines' own hook still refuses a runner it cannot follow.
        logger.warning("could not inspect vLLM's V2 model runner here (%s); engines choose their runner", exc)
        return {}
    return {"VLLM_USE_V2_MODEL_RUNNER": "0"} if problem else {}


def gpu_share_env(pool: PoolConfig, device: str) -> dict[str, str]:
    """Tell vLLM's Ray workers the GPU share of their bundle.

    vLLM's Ray executor asks for ``VLLM_RAY_PER_WORKER_GPUS`` GPUs per worker
    (default 1.0): with fractional bundles (several engines on one GPU) the
    workers cannot fit and the engine never starts. Ray Serve LLM derives the
    variable from the bundles, but only for its model-download callback, not
    for the replica that starts the engine, so the pool sets it here.
    """
    if device != "gpu" or not pool.worker_resources:
        return {}
    share = pool.worker_resources.get("GPU", 1.0)
    return {"VLLM_RAY_PER_WORKER_GPUS": str(share)} if 0 < share < 1 else {}


def rope_engine_kwargs(cluster: ClusterConfig, pool: PoolConfig) -> dict:
    """Engine kwargs of the long-context RoPE fix (deployments/rope)."""
    model = cluster.models[pool.model]
    return rope.engine_kwargs_for_pool(
        native_context=model.native_context,
        rope_scaling=model.rope_scaling,
        max_model_len=pool.engine.max_model_len,
        band_max_tokens=pool.max_tokens,
        validated_len=model.context_limit,
    )


def tier_capacity_tokens(cluster: ClusterConfig, pool: PoolConfig) -> int | None:
    """Tokens one replica keeps reloadable (GPU KV + tier); None without a tier or a plan.

    The affinity router follows a document to the replica holding its KV up
    to this capacity. Without a plan (unknown GPU) it keeps plain ring order.
    """
    if pool.kv_tier is None:
        return None
    try:
        plan = plan_pool(cluster, pool, search_tp=False)
    except PlanError:
        return None
    return replica_capacity_tokens(plan.kv_tier)


def llm_config_for_pool(cluster: ClusterConfig, pool: PoolConfig):
    from ray.serve.llm import LLMConfig

    model = cluster.models[pool.model]
    engine_kwargs: dict[str, Any] = {
        **pool.engine.to_engine_kwargs(),
        "trust_remote_code": model.trust_remote_code,
    }
    rope_kwargs = rope_engine_kwargs(cluster, pool)
    if rope_kwargs.get("hf_overrides"):
        engine_kwargs["hf_overrides"] = {**engine_kwargs.get("hf_overrides", {}), **rope_kwargs.pop("hf_overrides")}
    engine_kwargs.update(rope_kwargs)
    # Host-RAM KV tier (deployments/kv_tier.py): vLLM's own offloading
    # arguments, checked against the installed vLLM here, at build time.
    engine_kwargs.update(tier_engine_kwargs(pool.name, pool.kv_tier))
    if cluster.device == "cpu":
        # Not a GPU: vLLM's CPU backend takes its KV size from
        # VLLM_CPU_KVCACHE_SPACE, and the GPU-only knob is meaningless.
        engine_kwargs.pop("gpu_memory_utilization", None)
    # Replica bounds and the drain timeout, as the chart also renders them per
    # deployment in serveConfigV2 (deployments/serve_options.py says why there).
    deployment_config: dict[str, Any] = pool_serve_options(cluster, pool)
    # A replica busy with its longest prefill must not be declared unhealthy
    # and restarted: health checks wait longer than that prefill (planner estimate).
    period, timeout = health_check_settings(cluster, pool)
    deployment_config["health_check_period_s"] = period
    deployment_config["health_check_timeout_s"] = timeout
    if pool.max_ongoing_requests is not None:
        deployment_config["max_ongoing_requests"] = pool.max_ongoing_requests
    router = request_router_config(pool, tier_capacity_tokens(cluster, pool))
    if router is not None:
        deployment_config["request_router_config"] = router
    env_vars = {**model_runner_env(cluster.device), **cluster.engine_env, **gpu_share_env(pool, cluster.device),
                **pool.env}
    return LLMConfig(
        model_loading_config={
            "model_id": pool.model,
            "model_source": model.path,
            **({"tokenizer_source": model.tokenizer} if model.tokenizer else {}),
        },
        engine_kwargs=engine_kwargs,
        accelerator_type=pool.accelerator_type,
        placement_group_config={
            "bundles": placement_bundles(pool, cluster.device),
            # A TP group talks over NVLink/shared memory: keep it on one node.
            "strategy": "STRICT_PACK",
        },
        deployment_config=deployment_config,
        runtime_env={"env_vars": env_vars} if env_vars else None,
        log_engine_metrics=True,
        # Ray Serve LLM releases a stream's chunks on a timer: the first token
        # waits for the next tick too (cluster/config/pool.py).
        experimental_configs={"stream_batching_interval_ms": pool.stream_batching_interval_ms},
    )


def build_pool_deployment(cluster: ClusterConfig, pool: PoolConfig):
    """The bound Serve deployment of one pool."""
    from ray.serve.llm import build_llm_deployment

    from deployments.pool_server import PoolServer

    return build_llm_deployment(
        llm_config_for_pool(cluster, pool),
        override_serve_options={"name": pool_deployment_name(pool.name)},
        deployment_cls=PoolServer,
    )
