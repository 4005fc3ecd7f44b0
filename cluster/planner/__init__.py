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

  base.py          FrozenModel, PlanError: what the parts share
  architecture.py  Architecture, ARCHITECTURES, resolve_architecture
  memory.py        PoolPlan, plan_pool, plan_cluster (the arithmetic above; pools that
                   share one GPU are told what their memory shares leave of it)
  shapes.py        WorkerShape, worker_shapes (Kubernetes worker groups)
  report.py        format_table, format_report, failures
  kv_tier.py       TierPlan, plan_tier: a pool's host-RAM KV tier (documents held,
                   reload vs prefill), replica_capacity_tokens for the router
  rotary.py        RotaryPlan, plan_rotary: rotary-table memory of a pool past the native
                   window, against a cos/sin cache per base of its rope_base mode
  ttft.py          cold_ttft_s (prefill of the band maximum), timeout_warnings,
                   health_check_settings
  command.py       the ``plan`` subcommand
"""

from cluster.planner.architecture import ARCHITECTURES, Architecture, architecture_from_hf_config, resolve_architecture
from cluster.planner.base import PlanError
from cluster.planner.command import add_plan_parser
from cluster.planner.kv_tier import TierPlan, plan_tier, replica_capacity_tokens
from cluster.planner.memory import ACCELERATOR_MEMORY_GIB, GIB, PoolPlan, plan_cluster, plan_pool
from cluster.planner.report import failures, format_report, format_table
from cluster.planner.shapes import WorkerShape, worker_shapes
from cluster.planner.ttft import PEAK_BF16_TFLOPS, UTILIZATION, cold_ttft_s, health_check_settings, timeout_warnings

__all__ = [
    "ACCELERATOR_MEMORY_GIB", "ARCHITECTURES", "GIB", "Architecture", "PlanError", "PoolPlan",
    "WorkerShape", "add_plan_parser", "architecture_from_hf_config", "failures", "format_report", "format_table",
    "PEAK_BF16_TFLOPS", "UTILIZATION", "cold_ttft_s", "health_check_settings", "plan_cluster", "plan_pool",
    "resolve_architecture", "timeout_warnings", "worker_shapes", "TierPlan", "plan_tier",
    "replica_capacity_tokens",
]
