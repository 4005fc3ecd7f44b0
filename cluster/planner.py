"""Capacity planner: does each pool of a profile fit its hardware?

For every pool it works out, per GPU (or per CPU worker) of one replica:

* the weights' share (vocab-parallel embeddings and all linear layers split
  by tensor parallelism; norms are negligible);
* KV bytes per token, ``2 x layers x kv_heads x head_dim x bytes``, with the
  KV heads a GPU actually holds: vLLM gives each rank ``max(1, kv_heads / tp)``
  heads, so once TP exceeds the KV head count the heads are *replicated* and
  the extra GPUs add no KV room per token;
* the KV budget: ``gpu_memory_utilization x GPU memory - weights - overhead``
  on GPUs, ``VLLM_CPU_KVCACHE_SPACE`` GiB per worker on vLLM's CPU backend;
* the largest token count that budget holds, and whether ``max_model_len``
  (hard: vLLM refuses to start otherwise) and ``max_model_len x max_num_seqs``
  (soft: beyond it the scheduler queues or preempts) fit.

Overhead assumption (GPU): vLLM sizes the KV cache after a profiling forward
pass of ``max_num_batched_tokens`` tokens, so the activation peak of that pass
is lost to KV. We estimate it as ``B x (4 x hidden + (heads + 2 x kv_heads) x
head_dim / tp + 3 x intermediate / tp) x 2 bytes`` (residual/norm buffers,
QKV output, MLP gate/up + activation), plus 1 GiB of non-torch memory (CUDA
context, cuBLAS/NCCL workspaces, allocator slack), 0.5 GiB for NCCL/custom
all-reduce buffers when tp > 1, and 0.5 GiB for CUDA graphs unless
``enforce_eager``. For InternLM2.5 on one A100-80G with B = 16384 this is
3.5 GiB and gives the ~445k-token single-request capacity estimated for it. Real runs differ by a
few percent; a pool that fits only by less than that margin is flagged.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType
from typing import Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field

from cluster.config import ClusterConfig, ModelConfig, PoolConfig

GIB = 1024**3
KIB = 1024
# vLLM allocates KV in blocks of 16 tokens (CUDA default); capacity rounds down to it.
KV_BLOCK_TOKENS = 16
# When max_num_batched_tokens is unset, vLLM picks 2048-16384 by GPU; the
# largest common value keeps the activation estimate on the safe side.
DEFAULT_BATCHED_TOKENS = 16384
NON_TORCH_GIB = 1.0
TP_COMM_GIB = 0.5
CUDA_GRAPH_GIB = 0.5
# Estimates are approximate: a pool whose KV headroom is below this share is
# reported as tight rather than comfortably fitting.
TIGHT_MARGIN = 0.05


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Architecture(_Frozen):
    """The dimensions of a decoder-only transformer that memory depends on."""

    name: str = Field(description="config.json `architectures[0]`.")
    hidden_size: int = Field(gt=0, description="Model width.")
    intermediate_size: int = Field(gt=0, description="MLP width (gate/up/down, SwiGLU).")
    num_layers: int = Field(gt=0, description="Decoder layers.")
    num_heads: int = Field(gt=0, description="Query heads.")
    num_kv_heads: int = Field(gt=0, description="Key/value heads (GQA).")
    head_dim: int = Field(gt=0, description="Per-head width.")
    vocab_size: int = Field(gt=0, description="Vocabulary (embedding and LM head rows).")
    tie_word_embeddings: bool = Field(default=False, description="LM head shares the embedding.")
    dtype_bytes: int = Field(default=2, description="Bytes per weight of the checkpoint (bf16: 2).")

    @property
    def params(self) -> int:
        """Parameter count of the llama-style layout both InternLM generations use."""
        attention = self.hidden_size * (self.num_heads + 2 * self.num_kv_heads) * self.head_dim
        attention += self.num_heads * self.head_dim * self.hidden_size
        mlp = 3 * self.hidden_size * self.intermediate_size
        norms = 2 * self.hidden_size
        embeddings = self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)
        return self.num_layers * (attention + mlp + norms) + embeddings + self.hidden_size

    def kv_heads_per_rank(self, tp: int) -> int:
        return max(1, self.num_kv_heads // tp)

    def kv_bytes_per_token(self, kv_heads: int, kv_bytes: int) -> int:
        return 2 * self.num_layers * kv_heads * self.head_dim * kv_bytes


# The published checkpoints' config.json (internlm/internlm2_5-7b-chat-1m and
# internlm/internlm3-8b-instruct on the Hugging Face hub); used when a profile
# names weights that are not on this machine.
ARCHITECTURES: Mapping[str, Architecture] = MappingProxyType(
    {
        "InternLM2ForCausalLM": Architecture(
            name="InternLM2ForCausalLM", hidden_size=4096, intermediate_size=14336,
            num_layers=32, num_heads=32, num_kv_heads=8, head_dim=128, vocab_size=92544,
        ),
        "InternLM3ForCausalLM": Architecture(
            name="InternLM3ForCausalLM", hidden_size=4096, intermediate_size=10240,
            num_layers=48, num_heads=32, num_kv_heads=2, head_dim=128, vocab_size=128512,
        ),
    }
)

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

_DTYPE_BYTES = MappingProxyType(
    {
        "float32": 4, "float": 4, "fp32": 4,
        "bfloat16": 2, "float16": 2, "half": 2, "bf16": 2, "fp16": 2,
        "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1,
    }
)


class PlanError(ValueError):
    """The planner cannot plan a pool (unknown architecture or accelerator)."""


class PoolPlan(_Frozen):
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


# --- architecture and dtypes --------------------------------------------------


def architecture_from_hf_config(hf: Mapping) -> Architecture:
    """Dimensions from a checkpoint's config.json (both InternLM generations)."""
    names = hf.get("architectures") or []
    if not names:
        raise PlanError("config.json has no `architectures`")
    heads = int(hf["num_attention_heads"])
    hidden = int(hf["hidden_size"])
    return Architecture(
        name=names[0],
        hidden_size=hidden,
        intermediate_size=int(hf["intermediate_size"]),
        num_layers=int(hf["num_hidden_layers"]),
        num_heads=heads,
        num_kv_heads=int(hf.get("num_key_value_heads") or heads),
        head_dim=int(hf.get("head_dim") or hidden // heads),
        vocab_size=int(hf["vocab_size"]),
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
        dtype_bytes=_DTYPE_BYTES.get(str(hf.get("torch_dtype", "bfloat16")), 2),
    )


def resolve_architecture(model_name: str, model: ModelConfig) -> Architecture:
    """config.json of the weights when present, else the profile's hint."""
    config_json = Path(model.path) / "config.json"
    if config_json.is_file():
        return architecture_from_hf_config(json.loads(config_json.read_text()))
    if model.architecture is None:
        raise PlanError(
            f"model {model_name}: {config_json} does not exist and the profile sets no "
            f"`architecture`; set models.{model_name}.architecture to one of "
            f"{sorted(ARCHITECTURES)}"
        )
    try:
        return ARCHITECTURES[model.architecture]
    except KeyError:
        raise PlanError(
            f"model {model_name}: unknown architecture {model.architecture!r}; the planner "
            f"knows {sorted(ARCHITECTURES)} (or put the weights' config.json at {model.path})"
        ) from None


def _dtype_bytes(name: str, fallback: int) -> int:
    if name == "auto":
        return fallback
    try:
        return _DTYPE_BYTES[name]
    except KeyError:
        raise PlanError(f"unknown dtype {name!r}") from None


def valid_tensor_parallel(arch: Architecture, tp: int) -> str | None:
    """vLLM's own divisibility rules; returns why ``tp`` is invalid, or None."""
    if arch.num_heads % tp:
        return f"tensor_parallel_size {tp} does not divide {arch.num_heads} attention heads"
    if arch.num_kv_heads % tp and tp % arch.num_kv_heads:
        return (
            f"tensor_parallel_size {tp} and {arch.num_kv_heads} KV heads: neither divides "
            "the other"
        )
    return None


# --- the plan -------------------------------------------------------------------


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
        if pool.accelerator_type is None:
            raise PlanError(
                f"pool {pool.name}: no accelerator_type; set it (one of "
                f"{sorted(ACCELERATOR_MEMORY_GIB)}) or pass the GPU memory explicitly"
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

    weight_bytes = _dtype_bytes(engine.dtype, arch.dtype_bytes)
    kv_bytes = _dtype_bytes(
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
    if not fits and min_tp is not None and min_tp != tp:
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
        min_tensor_parallel_size=min_tp,
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
    return [plan_pool(cluster, pool, device_memory_gib=device_memory_gib) for pool in cluster.pools]


# --- Kubernetes shapes ------------------------------------------------------------


class WorkerShape(_Frozen):
    """One Ray worker group: pods that each host one replica of a pool."""

    accelerator: str | None = Field(description="accelerator_type, None on CPU.")
    devices_per_pod: int = Field(description="GPUs (or CPU workers) per pod = TP size.")
    min_replicas: int = Field(description="Sum of the pools' replicas.min.")
    max_replicas: int = Field(description="Sum of the pools' replicas.max.")
    replicas: int = Field(description="Sum of the pools' initial replicas.")
    pools: tuple[str, ...] = Field(description="Pools sharing this shape.")


def worker_shapes(cluster: ClusterConfig) -> list[WorkerShape]:
    """The worker groups a Kubernetes deployment needs: one pod per replica.

    The Helm chart derives the same groups in its templates; tests compare the two.
    """
    shapes: dict[tuple[str | None, int], dict] = {}
    for pool in cluster.pools:
        key = (pool.accelerator_type, pool.engine.tensor_parallel_size)
        entry = shapes.setdefault(key, {"min": 0, "max": 0, "initial": 0, "pools": []})
        replicas = pool.replicas
        entry["min"] += replicas.min
        entry["max"] += replicas.max
        entry["initial"] += replicas.min if replicas.initial is None else replicas.initial
        entry["pools"].append(pool.name)
    return [
        WorkerShape(
            accelerator=acc, devices_per_pod=tp, min_replicas=e["min"], max_replicas=e["max"],
            replicas=e["initial"], pools=tuple(e["pools"]),
        )
        for (acc, tp), e in shapes.items()
    ]


# --- rendering ---------------------------------------------------------------------


def _tokens(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.2f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    return f"{n:,}"


def _status(plan: PoolPlan) -> str:
    if not plan.fits:
        return "DOES NOT FIT"
    if plan.tight:
        return "fits (tight)"
    return "fits" if plan.fits_all_seqs else f"fits ({plan.full_length_seqs} full-length)"


COLUMNS = (
    "pool", "TP", "GPU", "weights/GPU", "KV/token GPU (group)", "KV budget/GPU",
    "max KV tokens", "max_model_len x seqs", "status",
)


def plan_rows(plans: list[PoolPlan]) -> list[tuple[str, ...]]:
    rows = []
    for p in plans:
        gpu = (
            f"{p.accelerator or '?'} {p.device_memory_gib:.1f} GiB" if p.device == "gpu"
            else "CPU worker"
        )
        kv = f"{p.kv_bytes_per_token_device / KIB:g} KiB ({p.kv_bytes_per_token_total / KIB:g} KiB)"
        if p.kv_heads_replicated:
            kv += " repl."
        rows.append((
            p.pool, str(p.tensor_parallel_size), gpu, f"{p.weights_gib_per_device:.2f} GiB",
            kv, f"{p.kv_budget_gib_per_device:.1f} GiB", _tokens(p.max_tokens),
            f"{_tokens(p.max_model_len)} x {p.max_num_seqs}", _status(p),
        ))
    return rows


def format_table(plans: list[PoolPlan], markdown: bool = False) -> str:
    rows = [COLUMNS, *plan_rows(plans)]
    if markdown:
        lines = ["| " + " | ".join(r) + " |" for r in rows]
        lines.insert(1, "|" + "|".join("---" for _ in COLUMNS) + "|")
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def format_report(plans: list[PoolPlan], markdown: bool = False) -> str:
    out = [format_table(plans, markdown)]
    for p in plans:
        for note in p.notes:
            out.append(f"note  {p.pool}: {note}")
        for problem in p.problems:
            out.append(f"ERROR {p.pool}: {problem}")
    return "\n".join(out)


def failures(plans: list[PoolPlan], strict: bool = False) -> list[str]:
    """Messages of pools that cannot run (or, with ``strict``, cannot hold all seqs)."""
    bad = []
    for p in plans:
        if not p.fits:
            bad.append(f"pool {p.pool} cannot fit: " + "; ".join(p.problems))
        elif strict and not p.fits_all_seqs:
            bad.append(
                f"pool {p.pool}: max_model_len x max_num_seqs = "
                f"{p.max_model_len * p.max_num_seqs:,} tokens > {p.max_tokens:,} in KV"
            )
    return bad


# --- command line -------------------------------------------------------------------


def cmd_plan(args, load) -> int:
    cluster = load(args.profile, args.set)
    try:
        plans = plan_cluster(cluster, device_memory_gib=args.gpu_memory_gib)
    except PlanError as exc:
        raise SystemExit(f"profile {args.profile}: {exc}") from None
    if args.format == "json":
        print(json.dumps([p.model_dump(mode="json") for p in plans], indent=2))
    else:
        print(format_report(plans, markdown=args.format == "markdown"))
        print("\nKubernetes worker groups (helm/): one pod per replica")
        for shape in worker_shapes(cluster):
            print(f"  {shape.devices_per_pod} x {shape.accelerator or cluster.device} per pod, "
                  f"{shape.min_replicas}-{shape.max_replicas} pods: {', '.join(shape.pools)}")
    bad = failures(plans, strict=args.strict)
    if bad:
        # stderr and a non-zero exit so CI and `helm` wrappers stop on it.
        raise SystemExit(f"profile {args.profile} does not fit:\n  " + "\n  ".join(bad))
    return 0


def add_plan_parser(subparsers, load) -> None:
    """The ``plan`` subcommand; ``load(profile, overrides)`` is the CLI's profile loader."""
    p = subparsers.add_parser("plan", help="capacity plan: weights, KV per token, tokens that fit")
    p.add_argument("profile", nargs="?", default="cpu-demo", help="profile name or YAML path")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a profile value, e.g. pools.il25-long.engine.tensor_parallel_size=2")
    p.add_argument("--gpu-memory-gib", type=float, default=None,
                   help="GPU memory for accelerators the planner does not know")
    p.add_argument("--strict", action="store_true",
                   help="also fail when max_model_len x max_num_seqs does not fit")
    p.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    p.set_defaults(func=lambda args: cmd_plan(args, load))


__all__ = [
    "ACCELERATOR_MEMORY_GIB", "ARCHITECTURES", "Architecture", "PlanError", "PoolPlan",
    "WorkerShape", "add_plan_parser", "architecture_from_hf_config", "failures", "format_report", "format_table",
    "plan_cluster", "plan_pool", "resolve_architecture", "worker_shapes",
]
