"""The cluster's one configuration schema.

A profile (YAML) describes models and the pools that serve them. The same
schema is read by the Serve app at start-up (``deployments.app``), by the CLI
and planner (``cluster``), and by the Helm chart, which embeds the profile in
the RayService's ``serveConfigV2`` as the app's ``args``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deployments.documents.store import DocumentStoreConfig
from deployments.rope import max_supported_len

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(StrictModel):
    """One served model: weights, tokenizer, chat format and RoPE facts."""

    path: str = Field(
        description="Directory with weights, config.json and tokenizer (or a hub id "
        "where the engine may download).",
    )
    tokenizer: str | None = Field(
        default=None, description="Tokenizer directory; defaults to `path`."
    )
    chat_template: str | None = Field(
        default=None,
        description="Jinja chat template overriding the tokenizer's own. Must render "
        "the same prompt the engine would see.",
    )
    native_context: int | None = Field(
        default=None,
        gt=0,
        description="Native RoPE window (config.json `max_position_embeddings`); read "
        "from config.json when omitted.",
    )
    rope_scaling: dict[str, Any] | None = Field(
        default=None,
        description="RoPE scaling from config.json (e.g. {type: dynamic, factor: 2.5}); "
        "read from config.json when omitted.",
    )
    context_limit: int | None = Field(
        default=None,
        gt=0,
        description="Length the model was validated for past native x rope factor (dynamic "
        "NTK has no hard limit; InternLM2.5-7B-Chat-1M: 1048576). Without it: native x factor, "
        "or the publisher's figure for known models.",
    )
    stop_token_ids: list[int] = Field(
        default_factory=list,
        description="Token ids that end a turn (e.g. `</s>` and `<|im_end|>`), added to "
        "every request.",
    )
    thinking_system_prompt: str | None = Field(
        default=None,
        description="System prompt that switches on the model's deep-thinking mode "
        "(InternLM3). Requests opt in with `\"thinking\": true`.",
    )
    default_max_tokens: int = Field(
        default=1024,
        gt=0,
        description="Completion budget assumed for routing when a request sets no "
        "`max_tokens`; it is then passed to the engine explicitly.",
    )
    trust_remote_code: bool = Field(
        default=True,
        description="InternLM checkpoints define their config classes as remote code.",
    )
    architecture: str | None = Field(
        default=None,
        description="Architecture name as in config.json `architectures[0]` (e.g. "
        "InternLM2ForCausalLM). Only the capacity planner reads it, and only when the "
        "weights are not on this machine; config.json wins when present.",
    )

    @property
    def tokenizer_path(self) -> str:
        return self.tokenizer or self.path

    @property
    def max_context(self) -> int:
        """Longest context the model serves correctly (deployments/rope)."""
        return max_supported_len(self.native_context, self.rope_scaling, self.context_limit)

    @model_validator(mode="after")
    def _read_checkpoint_facts(self) -> "ModelConfig":
        if self.native_context is not None and self.rope_scaling is not None:
            return self
        config_json = Path(self.path) / "config.json"
        if not config_json.is_file():
            if self.native_context is None:
                raise ValueError(
                    f"native_context is not set and {config_json} does not exist; set "
                    "native_context (and rope_scaling) in the profile for weights that "
                    "are not present on this machine"
                )
            return self
        hf = json.loads(config_json.read_text())
        if self.native_context is None:
            self.native_context = int(hf["max_position_embeddings"])
        if self.rope_scaling is None and hf.get("rope_scaling"):
            self.rope_scaling = dict(hf["rope_scaling"])
        return self


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
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment of this pool's engine processes, over the cluster's engine_env.",
    )
    admission: AdmissionConfig = Field(default_factory=AdmissionConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    request_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="Longest wait for this pool's first token (and between streamed chunks); "
        "long bands need long prefills. Default: ingress.request_timeout_s.",
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


class AuthConfig(StrictModel):
    """Bearer-token API keys."""

    enabled: bool = Field(default=False, description="Require `Authorization: Bearer <key>`.")
    keys_env: str = Field(
        default="LONGCTX_API_KEYS",
        description="Environment variable holding keys, comma or newline separated.",
    )
    keys_file: str | None = Field(
        default=None,
        description="File holding keys, one per line (e.g. a mounted Kubernetes Secret).",
    )


class IngressConfig(StrictModel):
    """The HTTP front door."""

    host: str = Field(default="127.0.0.1", description="Address Serve's HTTP proxy binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="HTTP port.")
    replicas: int = Field(default=1, ge=1, description="Ingress replicas.")
    request_timeout_s: float = Field(
        default=3600.0, gt=0, description="Longest a request may take end to end."
    )
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="Largest request body accepted."
    )
    auth: AuthConfig = Field(default_factory=AuthConfig)


DEFAULT_DOCUMENT_SYSTEM_PROMPT = (
    "You answer questions about the document the user gives you. Base every answer on the "
    "document, quote it where that helps, and say so when the document does not contain the answer."
)


class DocumentsConfig(StrictModel):
    """Long-document QA: where documents live and how questions are laid out."""

    store: DocumentStoreConfig = Field(default_factory=DocumentStoreConfig)
    system_prompt: str = Field(
        default=DEFAULT_DOCUMENT_SYSTEM_PROMPT,
        min_length=1,
        description="System prompt before every document (part of the cached prefix).",
    )
    max_questions: int = Field(default=16, ge=1, le=64, description="Questions per ask call.")


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

    def pools_of(self, model: str) -> list[PoolConfig]:
        """The model's pools, shortest band first."""
        return sorted((p for p in self.pools if p.model == model), key=lambda p: p.min_tokens)

    def pool(self, name: str) -> PoolConfig:
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise KeyError(name)


# --- loading -----------------------------------------------------------------


def _expand_env(value: Any, env: Mapping[str, str]) -> Any:
    """Expand ${VAR} and ${VAR:-default} in strings, so profiles can name
    user-supplied weight directories without editing the file."""
    if isinstance(value, str):
        return _ENV_REF.sub(lambda m: env.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: _expand_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, env) for v in value]
    return value


def _resolve_relative_paths(raw: dict, base: Path) -> None:
    """Paths starting ./ or ../ are relative to the profile file, not to the
    working directory of whichever process (a Ray worker) reads them."""

    def resolve(node, key):
        value = node.get(key) if isinstance(node, dict) else None
        if isinstance(value, str) and value.startswith(("./", "../")):
            node[key] = str((base / value).resolve())

    for model in (raw.get("models") or {}).values():
        resolve(model, "path")
        resolve(model, "tokenizer")
    resolve(((raw.get("documents") or {}).get("store") or {}), "data_dir")


def apply_override(raw: dict, assignment: str) -> None:
    """Apply one ``dotted.path=value`` override; pools are addressed by name.

    ``pools.il25-short.replicas.max=4`` or ``models.m.default_max_tokens=64``.
    The value is parsed as YAML, so numbers, booleans and lists work.
    """
    if "=" not in assignment:
        raise ValueError(f"override {assignment!r} is not of the form key.path=value")
    key, _, text = assignment.partition("=")
    parts = key.strip().split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            matches = [item for item in node if isinstance(item, dict) and item.get("name") == part]
            if not matches:
                raise ValueError(f"override {key!r}: no entry named {part!r}")
            node = matches[0]
        else:
            node = node.setdefault(part, {})
    node[parts[-1]] = yaml.safe_load(text)


def load_config(
    source: str | Path | Mapping[str, Any],
    overrides: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> ClusterConfig:
    """Load a profile from a YAML path or an already-parsed mapping.

    Overrides come from ``overrides`` and then from ``LONGCTX_SET`` in the
    environment (``;``-separated ``key=value`` assignments).
    """
    env = os.environ if env is None else env
    if isinstance(source, Mapping):
        raw = json.loads(json.dumps(source))
        base = Path.cwd()
    else:
        path = Path(source)
        raw = yaml.safe_load(path.read_text()) or {}
        base = path.resolve().parent
    raw = _expand_env(raw, env)
    _resolve_relative_paths(raw, base)
    env_overrides = [s for s in env.get("LONGCTX_SET", "").split(";") if s.strip()]
    for assignment in [*overrides, *env_overrides]:
        apply_override(raw, assignment)
    return ClusterConfig.model_validate(raw)


def profile_path(name_or_path: str) -> Path:
    """Resolve a profile name (``cpu-demo``) or a path to a YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return candidate
    bundled = Path(__file__).resolve().parent.parent / "deployments" / f"{name_or_path}.yaml"
    if bundled.exists():
        return bundled
    raise FileNotFoundError(f"no profile {name_or_path!r} (looked for {candidate} and {bundled})")
