"""The memory plan of one pool: weights, KV per token, the KV budget and what fits.

See the package docstring for the arithmetic and its overhead assumptions.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Literal, Mapping

from pydantic import Field

from cluster.config import ClusterConfig, PoolConfig
from cluster.planner.architecture import Architecture, element_bytes, resolve_architecture, valid_tensor_parallel
from cluster.planner.base import DEFAULT_BATCHED_TOKENS, FrozenModel, PlanError
from cluster.planner.kv_tier import TierPlan, plan_tier
from cluster.planner.rotary import RotaryPlan, plan_rotary
from cluster.planner.ttft import cold_ttft_s

GIB = 1024**3
KIB = 1024
# vLLM allocates KV in blocks of 16 tokens (CUDA default); capacity rounds down to it.
KV_BLOCK_TOKENS = 16
NON_TORCH_GIB = 1.0
TP_COMM_GIB = 0.5
CUDA_GRAPH_GIB = 0.5
# Estimates are approximate: a pool whose KV headroom is below this share is
# reported as tight rather than comfortably fitting.
TIGHT_MARGIN = 0.05

# Total device memory as nvidia-smi reports it (MiB / 1024), keyed by the
# Ray accelerator_type the profiles use.
ACCELERATOR_MEMORY_GIB: Mapping[str, float] = MappingProxyType(
    {
        "A100-40G": 40960 / 1024,
        "A100-80G": 81920 / 1024,
        "H100": 81559 / 1024,
        "H200": 143771 / 1024,
    }
)


class PoolPlan(FrozenModel):
    """The memory plan of one pool (per replica)."""

    pool: str = Field(description="Pool name.")
    model: str = Field(description="Served model name.")
    architecture: str = Field(description="Architecture the numbers come from.")
    device: Literal["cpu", "gpu"] = Field(description="Engine hardware.")
    accelerator: str | None = Field(description="accelerator_type of the pool (GPU).")
    tensor_parallel_size: int = Field(description="GPUs (CPU workers) per replica.")
    device_memory_gib: float | None = Field(description="Memory of one GPU.")
    weights_gib_per_device: float = Field(description="Weights held by one GPU/worker.")
    overhead_gib_per_device: float = Field(description="Activation + workspace estimate (GPU).")
    kv_budget_gib_per_device: float = Field(description="Memory left for KV on one GPU/worker.")
    kv_heads_per_device: int = Field(description="KV heads one GPU/worker stores.")
    kv_heads_replicated: bool = Field(description="TP > kv_heads: heads are copied across GPUs.")
    kv_bytes_per_token_device: int = Field(description="KV bytes per token on one GPU/worker.")
    kv_bytes_per_token_total: int = Field(description="KV bytes per token across the TP group.")
    kv_dtype_bytes: int = Field(description="Bytes per KV element.")
    max_tokens: int = Field(description="Largest token count the replica's KV cache holds.")
    max_model_len: int = Field(description="engine.max_model_len.")
    max_num_seqs: int = Field(description="engine.max_num_seqs.")
    full_length_seqs: int = Field(description="max_model_len-long sequences that fit at once.")
    fits: bool = Field(description="One max_model_len sequence fits (else vLLM refuses to start).")
    fits_all_seqs: bool = Field(description="max_model_len x max_num_seqs fits.")
    tight: bool = Field(description="Fits by less than the estimate's margin of error.")
    problems: tuple[str, ...] = Field(description="Why the pool cannot run, if it cannot.")
    notes: tuple[str, ...] = Field(description="Caveats worth reading.")
    min_tensor_parallel_size: int | None = Field(
        description="Smallest valid TP at which max_model_len fits (None: none up to 8)."
    )
    cold_ttft_s: float | None = Field(
        default=None,
        description="Estimated prefill of the band maximum from an empty cache (cluster/planner/ttft.py); "
        "None on CPU or an unknown GPU.",
    )
    kv_tier: TierPlan | None = Field(
        default=None, description="The pool's host-RAM KV tier (cluster/planner/kv_tier.py); None without one."
    )
    rotary: RotaryPlan | None = Field(
        default=None, description="Rotary tables past the native window (cluster/planner/rotary.py); None inside it."
    )


def _gpu_overhead_gib(arch: Architecture, pool: PoolConfig, tp: int) -> float:
    engine = pool.engine
    batched = engine.max_num_batched_tokens or DEFAULT_BATCHED_TOKENS
    per_token = (
        4 * arch.hidden_size
        + (arch.num_heads + 2 * arch.num_kv_heads) * arch.head_dim / tp
        + 3 * arch.intermediate_size / tp
    )
    activations = batched * per_token * 2 / GIB
    fixed = NON_TORCH_GIB + (TP_COMM_GIB if tp > 1 else 0.0)
    fixed += 0.0 if engine.enforce_eager else CUDA_GRAPH_GIB
    return activations + fixed


def _kv_budget_gib(
    cluster: ClusterConfig, pool: PoolConfig, arch: Architecture, tp: int,
    weights_gib: float, device_memory_gib: float | None,
) -> tuple[float, float, list[str]]:
    """(KV budget, overhead) per GPU/worker, and problems found on the way."""
    explicit = pool.engine.extra.get("kv_cache_memory_bytes")
    if cluster.device == "cpu":
        env = {**cluster.engine_env, **pool.env}
        space = env.get("VLLM_CPU_KVCACHE_SPACE", "").strip()
        if explicit is not None:
            return float(explicit) / GIB, 0.0, []
        if not space:
            return 0.0, 0.0, [
                "device cpu: set VLLM_CPU_KVCACHE_SPACE (GiB of KV per worker) in engine_env "
                "or the pool's env; the planner has nothing else to plan against"
            ]
        return float(space), 0.0, []
    overhead = _gpu_overhead_gib(arch, pool, tp)
    if explicit is not None:
        return float(explicit) / GIB, overhead, []
    assert device_memory_gib is not None
    budget = pool.engine.gpu_memory_utilization * device_memory_gib - weights_gib - overhead
    problems = []
    if budget <= 0:
        problems.append(
            f"weights ({weights_gib:.1f} GiB) + overhead ({overhead:.1f} GiB) exceed "
            f"{pool.engine.gpu_memory_utilization:g} x {device_memory_gib:.1f} GiB per GPU"
        )
    return max(budget, 0.0), overhead, problems


def _capacity_tokens(budget_gib: float, kv_bytes_device: int) -> int:
    tokens = int(budget_gib * GIB // kv_bytes_device)
    return tokens - tokens % KV_BLOCK_TOKENS


def plan_pool(
    cluster: ClusterConfig,
    pool: PoolConfig,
    *,
    device_memory_gib: float | None = None,
    tensor_parallel_size: int | None = None,
    search_tp: bool = True,
) -> PoolPlan:
    """Plan one pool; ``tensor_parallel_size`` replaces the pool's for what-ifs."""
    model = cluster.models[pool.model]
    arch = resolve_architecture(pool.model, model)
    engine = pool.engine
    tp = tensor_parallel_size or engine.tensor_parallel_size
    problems: list[str] = []
    notes: list[str] = []

    if cluster.device == "gpu" and device_memory_gib is None:
        device_memory_gib = cluster.gpu_memory_gib
    if cluster.device == "gpu" and device_memory_gib is None:
        if pool.accelerator_type is None:
            raise PlanError(
                f"pool {pool.name}: no accelerator_type; set it (one of "
                f"{sorted(ACCELERATOR_MEMORY_GIB)}), set gpu_memory_gib, or pass the GPU memory explicitly"
            )
        try:
            device_memory_gib = ACCELERATOR_MEMORY_GIB[pool.accelerator_type]
        except KeyError:
            raise PlanError(
                f"pool {pool.name}: GPU memory of accelerator_type {pool.accelerator_type!r} "
                f"is unknown (known: {sorted(ACCELERATOR_MEMORY_GIB)}); pass it explicitly "
                "(`plan --gpu-memory-gib`)"
            ) from None

    invalid = valid_tensor_parallel(arch, tp)
    if invalid:
        problems.append(invalid)

    weight_bytes = element_bytes(engine.dtype, arch.dtype_bytes)
    kv_bytes = element_bytes(
        "auto" if engine.kv_cache_dtype == "auto" else engine.kv_cache_dtype, weight_bytes
    )
    weights_gib = arch.params * weight_bytes / tp / GIB
    kv_heads = arch.kv_heads_per_rank(tp)
    replicated = tp > arch.num_kv_heads
    kv_device = arch.kv_bytes_per_token(kv_heads, kv_bytes)
    if replicated:
        notes.append(
            f"tp {tp} > {arch.num_kv_heads} KV heads: each KV head is stored on "
            f"{tp // arch.num_kv_heads} GPUs, so KV room per token grows only with the "
            "memory freed by sharding weights"
        )

    share = (pool.worker_resources or {}).get("GPU", 1.0)
    if cluster.device == "gpu" and share < 1:
        notes.append(
            f"shares a GPU: each worker takes {share:g} of one (Ray packs fractional bundles "
            f"until they sum to 1) and {engine.gpu_memory_utilization:g} x "
            f"{device_memory_gib:.1f} GiB of its memory"
        )
    ranks_may_share = cluster.device == "gpu" and tp > 1 and share <= 0.5
    if ranks_may_share:
        problems.append(
            f"tensor_parallel_size {tp} with a GPU share of {share:g} per worker: Ray packs "
            "fractional bundles onto one GPU until they sum to 1, so two ranks of the group "
            "can land on the same GPU; give each worker more than 0.5 of a GPU"
        )
    budget, overhead, budget_problems = _kv_budget_gib(
        cluster, pool, arch, tp, weights_gib, device_memory_gib
    )
    problems.extend(budget_problems)
    capacity = _capacity_tokens(budget, kv_device)
    full_length = capacity // engine.max_model_len
    fits = full_length >= 1 and not problems
    if not budget_problems and full_length < 1:
        problems.append(
            f"max_model_len {engine.max_model_len:,} needs "
            f"{engine.max_model_len * kv_device / GIB:.1f} GiB of KV per "
            f"{'GPU' if cluster.device == 'gpu' else 'worker'} but only "
            f"{budget:.1f} GiB is left ({capacity:,} tokens)"
        )
    fits_all = fits and full_length >= engine.max_num_seqs
    needed = engine.max_model_len * kv_device / GIB
    tight = fits and cluster.device == "gpu" and budget - needed < TIGHT_MARGIN * budget
    if fits and not fits_all:
        notes.append(
            f"{full_length} of max_num_seqs {engine.max_num_seqs} sequences fit at full "
            "length; vLLM queues or preempts beyond that (shorter ones share the cache)"
        )
    if tight:
        notes.append(
            "fits by less than the planner's margin of error: measure before relying on it"
        )

    min_tp = None
    if search_tp:
        min_tp = _smallest_fitting_tp(cluster, pool, device_memory_gib)
    if not fits and min_tp is not None and min_tp != tp and not ranks_may_share:
        where = pool.accelerator_type or cluster.device
        problems.append(f"needs tensor_parallel_size >= {min_tp} on {where}")

    return PoolPlan(
        pool=pool.name, model=pool.model, architecture=arch.name, device=cluster.device,
        accelerator=pool.accelerator_type, tensor_parallel_size=tp,
        device_memory_gib=device_memory_gib, weights_gib_per_device=weights_gib,
        overhead_gib_per_device=overhead, kv_budget_gib_per_device=budget,
        kv_heads_per_device=kv_heads, kv_heads_replicated=replicated,
        kv_bytes_per_token_device=kv_device, kv_bytes_per_token_total=kv_device * tp,
        kv_dtype_bytes=kv_bytes, max_tokens=capacity, max_model_len=engine.max_model_len,
        max_num_seqs=engine.max_num_seqs, full_length_seqs=full_length, fits=fits,
        fits_all_seqs=fits_all, tight=tight, problems=tuple(problems), notes=tuple(notes),
        min_tensor_parallel_size=min_tp, cold_ttft_s=cold_ttft_s(cluster, pool),
        kv_tier=plan_tier(
            cluster, pool, arch, tp=tp, kv_bytes_per_token_group=kv_device * tp, gpu_kv_tokens=capacity),
        rotary=plan_rotary(cluster, pool, arch.head_dim),
    )


def _smallest_fitting_tp(
    cluster: ClusterConfig, pool: PoolConfig, device_memory_gib: float | None
) -> int | None:
    for tp in (1, 2, 4, 8):
        plan = plan_pool(
            cluster, pool, device_memory_gib=device_memory_gib,
            tensor_parallel_size=tp, search_tp=False,
        )
        if plan.fits:
            return tp
    return None


def plan_cluster(cluster: ClusterConfig, *, device_memory_gib: float | None = None) -> list[PoolPlan]:
    plans = [plan_pool(cluster, pool, device_memory_gib=device_memory_gib) for pool in cluster.pools]
    return _with_shared_gpu_notes(cluster, plans)


# GPU memory left outside the engines' shares below which the plan warns.
# Each engine fills its whole share, so whatever else holds memory on the GPU
# (CUDA contexts, any other process) must fit the rest: on an H200 with shares
# summing to 0.96 (5.6 GiB left), a process holding 4.5 GiB ran an engine out
# of memory mid-prefill (benchmarks/results/gpu/internlm3-serve-oom.json).
SHARED_GPU_HEADROOM_GIB = 8.0


def _with_shared_gpu_notes(cluster: ClusterConfig, plans: list[PoolPlan]) -> list[PoolPlan]:
    """Note, on pools whose workers all fit one GPU together, how much of it their shares leave."""
    if cluster.device != "gpu":
        return plans
    # Workers of each pool on a fraction of a GPU: Ray packs them onto one GPU when their shares sum to <= 1.
    sharing = {pool.name: pool for pool in cluster.pools if (pool.worker_resources or {}).get("GPU", 1.0) < 1}
    workers = {name: pool.engine.tensor_parallel_size * pool.replicas.max for name, pool in sharing.items()}
    if sum(workers.values()) < 2 or sum(p.worker_resources["GPU"] * workers[n] for n, p in sharing.items()) > 1:
        return plans  # nothing shares, or Ray spreads the workers over several GPUs
    memory_share = sum(p.engine.gpu_memory_utilization * workers[n] for n, p in sharing.items())
    out = []
    for plan in plans:
        if plan.pool in sharing and plan.device_memory_gib:
            left = (1 - memory_share) * plan.device_memory_gib
            others = sorted(sharing.keys() - {plan.pool}) + (["its other replicas"] if workers[plan.pool] > 1 else [])
            note = (f"shares one GPU with {', '.join(others)}: their memory shares sum to {memory_share:.2f} "
                    f"of it, leaving {left:.1f} GiB for CUDA contexts and any other process")
            if left < SHARED_GPU_HEADROOM_GIB:
                note += (f"; under {SHARED_GPU_HEADROOM_GIB:g} GiB, another process on the GPU can run an "
                         "engine out of memory mid-prefill (each engine fills its whole share)")
            plan = plan.model_copy(update={"notes": (*plan.notes, note)})
        out.append(plan)
    return out
