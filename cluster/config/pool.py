"""A pool: identical engine replicas serving one band of context lengths, and its policies."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from cluster.config.base import StrictModel
from cluster.config.ingress import HeartbeatFrame
from cluster.config.kv_tier import KVTierConfig


class EngineConfig(StrictModel):
    """vLLM engine settings of one pool."""

    tensor_parallel_size: int = Field(default=1, ge=1, description="GPUs (or CPU workers) per replica.")
    max_model_len: int = Field(gt=0, description="Longest prompt + completion a replica accepts.")
    max_num_seqs: int = Field(default=16, ge=1, description="Sequences a replica runs at once.")
    max_num_batched_tokens: int | None = Field(
        default=None, ge=1, description="Tokens per scheduler step (chunked-prefill chunk)."
    )
    enable_prefix_caching: bool = Field(default=True, description="Reuse KV of shared prefixes (documents).")
    kv_cache_dtype: Literal["auto", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2"] = Field(
        default="auto", description="KV cache element type; fp8 halves KV bytes per token."
    )
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0.0, le=1.0, description="Share of GPU memory vLLM may take."
    )
    dtype: str = Field(default="auto", description="Weight/activation dtype.")
    enforce_eager: bool = Field(default=False, description="Skip graph capture (faster start).")
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="Further vLLM engine arguments, passed through unchanged (unknown keys "
        "make the engine refuse to start).",
    )

    def to_engine_kwargs(self) -> dict[str, Any]:
        kwargs = self.model_dump(exclude={"extra"}, exclude_none=True)
        kwargs.update(self.extra)
        return kwargs


class ReplicaConfig(StrictModel):
    """Replica count and autoscaling of one pool."""

    min: int = Field(default=1, ge=0, description="Replicas kept up (0 allows scale to zero).")
    max: int = Field(default=1, ge=1, description="Most replicas the autoscaler may start.")
    initial: int | None = Field(default=None, ge=0, description="Replicas at start; defaults to min.")
    target_ongoing_requests: float = Field(
        default=4.0, gt=0, description="Autoscaler's target of in-flight requests per replica."
    )

    @model_validator(mode="after")
    def _ordered(self) -> "ReplicaConfig":
        if self.min > self.max:
            raise ValueError(f"replicas.min ({self.min}) exceeds replicas.max ({self.max})")
        if self.initial is not None and not self.min <= self.initial <= self.max:
            raise ValueError(
                f"replicas.initial ({self.initial}) must lie in [{self.min}, {self.max}]"
            )
        return self


class AdmissionConfig(StrictModel):
    """Bounded queue of one pool, enforced by each ingress replica."""

    max_in_flight: int | None = Field(
        default=None,
        ge=1,
        description="Requests of this pool one ingress replica lets through at once (running "
        "plus queued at the engines). Past it: 429 with Retry-After. Default: 2 x "
        "replicas.max x engine.max_num_seqs.",
    )
    retry_after_s: int = Field(default=2, ge=1, description="Retry-After of a 429, in seconds.")


class RoutingConfig(StrictModel):
    """How a pool picks a replica for a request."""

    policy: Literal["affinity", "power_of_two", "prefix_cache"] = Field(
        default="affinity",
        description="affinity: bounded-load consistent hashing on the document (or long-prefix) "
        "key; power_of_two: Serve's default load-aware choice; prefix_cache: Ray Serve LLM's "
        "PrefixCacheAffinityRouter.",
    )
    prefix_tokens: int = Field(
        default=1024,
        ge=16,
        description="Prompts at least this long without a document get an affinity key from "
        "their first prefix_tokens tokens, so requests sharing a long prefix meet their cache.",
    )
    load_factor: float = Field(
        default=1.25,
        ge=1.0,
        description="A replica over load_factor x the pool's mean load is skipped for affinity.",
    )
    placement: Literal["load", "ring"] = Field(
        default="load",
        description="affinity only: where a key no replica holds goes. load: the replica with the "
        "least outstanding prefill work (ties in the key's ring order); ring: the key's place on the "
        "consistent-hash ring. Follow-ups go to the replica holding the key either way.",
    )


RopeBaseMode = Literal["pool", "request", "bucket"]


class RopeBaseConfig(StrictModel):
    """Which dynamic-NTK rotary base the pool's engines rotate each request with.

    Only pools whose engine reaches past the model's native window are
    concerned; a prompt inside the window gets the stock base in every mode
    (docs/long-context.md, Choosing the base).
    """

    mode: RopeBaseMode = Field(
        default="pool",
        description="pool: every request past the native window is rotated with the base for the "
        "band maximum (one base per pool: every cached prefix is reusable); request: with the base "
        "for its own prompt length, as the models' runtimes do (exact, but KV is reused only by "
        "requests of the same length); bucket: with the base for the top of its length bucket "
        "(buckets bucket_ratio apart in base, from the native window up).",
    )
    bucket_ratio: float = Field(
        default=1.25,
        gt=1.0,
        le=4.0,
        description="bucket mode: ratio between the rotary bases of neighbouring bucket tops, so "
        "the most a prompt's base exceeds its own-length base. Smaller: closer to exact, fewer "
        "cache hits across lengths.",
    )


class PoolConfig(StrictModel):
    """A group of identical engine replicas serving one band of context lengths."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$", description="Pool name (DNS-label style).")
    model: str = Field(description="Key of the served model in `models`.")
    band: tuple[int, int] = Field(
        description="[min_tokens, max_tokens]: requests whose prompt + max_tokens falls in "
        "this range go to this pool."
    )
    engine: EngineConfig
    replicas: ReplicaConfig = Field(default_factory=ReplicaConfig)
    accelerator_type: str | None = Field(
        default=None, description="Ray accelerator type, e.g. A100-80G (GPU profiles)."
    )
    worker_resources: dict[str, float] | None = Field(
        default=None,
        description="Ray resources of one tensor-parallel worker; defaults to one GPU "
        "(device gpu) or one CPU (device cpu).",
    )
    max_ongoing_requests: int | None = Field(
        default=None, ge=1, description="Requests one replica accepts before Serve queues."
    )
    stream_batching_interval_ms: float = Field(
        default=10.0,
        ge=0.0,
        description="Ray Serve LLM hands a stream's chunks to the ingress every this many ms, the first "
        "one included (Ray's default, 50 ms, adds 25 ms on average to a warm question's first token); "
        "0: every chunk at once (one Ray object per token).",
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment of this pool's engine processes, over the cluster's engine_env.",
    )
    admission: AdmissionConfig = Field(default_factory=AdmissionConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    rope_base: RopeBaseConfig = Field(
        default_factory=RopeBaseConfig,
        description="Rotary base per request past the model's native window: pool, request or bucket "
        "(docs/long-context.md).",
    )
    kv_tier: KVTierConfig | None = Field(
        default=None,
        description="Host-RAM KV tier of each replica (vLLM KV offloading): documents evicted "
        "from GPU KV are reloaded from it instead of prefilled again. None: no tier.",
    )
    request_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="Longest wait for this pool's first token (and between streamed chunks); "
        "long bands need long prefills. Default: ingress.request_timeout_s.",
    )
    stream_heartbeat_s: float | None = Field(
        default=None,
        ge=0,
        description="Streaming keep-alive of this pool (seconds; 0 = off). Default: "
        "ingress.stream_heartbeat_s.",
    )
    stream_heartbeat_frame: HeartbeatFrame | None = Field(
        default=None,
        description="What this pool's streaming heartbeat sends (comment or blank). Default: "
        "ingress.stream_heartbeat_frame.",
    )
    nonstream_heartbeat_s: float | None = Field(
        default=None,
        ge=0,
        description="Non-streaming keep-alive of this pool (seconds; 0 = off). Default: "
        "ingress.nonstream_heartbeat_s.",
    )
    health_check_period_s: float | None = Field(
        default=None,
        gt=0,
        description="Serve's health-check period of this pool's replicas. Default: derived from "
        "the planner's cold-TTFT estimate at the band maximum (cluster/planner/ttft.py), never "
        "below Serve's 10 s.",
    )
    health_check_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="Serve's health-check timeout of this pool's replicas. Default: 1.5 x the "
        "planner's cold-TTFT estimate at the band maximum, never below Serve's 30 s, so a replica "
        "busy with its longest prefill is not declared unhealthy and restarted.",
    )
    graceful_shutdown_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="How long Serve lets a stopping replica of this pool (a drain, a downscale, "
        "an upgrade) finish the requests it holds before killing it. Default: the pool's request "
        "timeout (request_timeout_s, else ingress.request_timeout_s), the longest a request may "
        "legitimately wait for its answer. The Helm chart sizes the pods' termination grace "
        "period from the largest.",
    )

    @model_validator(mode="after")
    def _gpu_share_bounds_memory(self) -> "PoolConfig":
        # Ray packs fractional bundles until their shares sum to 1 per GPU;
        # memory stays within the GPU only if no engine takes more than its share.
        share = (self.worker_resources or {}).get("GPU")
        if share is not None and share < 1 and self.engine.gpu_memory_utilization > share:
            raise ValueError(
                f"pool {self.name}: gpu_memory_utilization {self.engine.gpu_memory_utilization:g} "
                f"exceeds its GPU share {share:g} (worker_resources.GPU); engines sharing a GPU "
                "must not take more of its memory than their share"
            )
        return self

    @model_validator(mode="after")
    def _tier_needs_prefix_caching(self) -> "PoolConfig":
        # vLLM would start, but with prefix caching off no question ever hits
        # GPU KV: each one reloads its whole document from host RAM.
        if self.kv_tier is not None and not self.engine.enable_prefix_caching:
            raise ValueError(
                f"pool {self.name}: kv_tier needs engine.enable_prefix_caching: without it "
                "documents are never reused from GPU KV and every question reloads its whole "
                "document from the tier"
            )
        return self

    @property
    def max_in_flight(self) -> int:
        if self.admission.max_in_flight is not None:
            return self.admission.max_in_flight
        return 2 * self.replicas.max * self.engine.max_num_seqs

    @property
    def min_tokens(self) -> int:
        return self.band[0]

    @property
    def max_tokens(self) -> int:
        return self.band[1]

    @field_validator("band")
    @classmethod
    def _band_ordered(cls, band: tuple[int, int]) -> tuple[int, int]:
        low, high = band
        if low < 0 or high < 1 or low > high:
            raise ValueError(f"band {list(band)} must satisfy 0 <= min_tokens <= max_tokens")
        return band

    @model_validator(mode="after")
    def _band_within_engine(self) -> "PoolConfig":
        if self.max_tokens > self.engine.max_model_len:
            raise ValueError(
                f"pool {self.name}: band max {self.max_tokens} exceeds engine.max_model_len "
                f"{self.engine.max_model_len}"
            )
        return self
