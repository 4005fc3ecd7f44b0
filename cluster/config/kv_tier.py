"""A pool's host-RAM KV tier: where documents evicted from GPU KV wait to be reloaded.

vLLM (0.26 and 0.29 alike) turns two engine arguments into a KV connector
(``vllm/config/vllm.py::_post_init_kv_transfer_config``):

* ``kv_offloading_backend: native`` -> ``OffloadingConnector`` with
  ``kv_connector_extra_config.cpu_bytes_to_use = kv_offloading_size GiB``.
  That size is the replica's whole tier, summed over its tensor-parallel
  ranks (``CPUOffloadingSpec`` divides it by the world size), so each rank
  holds ``size_gib / tensor_parallel_size``. The buffer lives in the engine's
  own processes: private pinned tensors in vLLM 0.26, one region in
  ``/dev/shm`` pinned with cudaHostRegister in vLLM 0.29 (the chart sizes both,
  helm/templates/rayservice.yaml).
* ``kv_offloading_backend: lmcache`` -> ``LMCacheMPConnector``, a client of a
  separate LMCache server (``lmcache.mp.host`` / ``lmcache.mp.port``); vLLM
  does not pass the size on, the server owns its memory. ``size_gib`` then
  only feeds the planner, and the worker pods do not grow.

vLLM merges an explicit ``kv_transfer_config.kv_connector_extra_config`` with
what it derives, so ``options`` travel there (deployments/kv_tier.py). Options
are checked against what each backend reads: a misspelt option would
otherwise be ignored silently by vLLM.

What the installed vLLM supports (the argument exists, the lmcache package
imports) is checked where vLLM is importable, at app build time
(deployments/kv_tier.py); the CPU refusal is in ClusterConfig, which knows the
device.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, Literal, Mapping

from pydantic import Field, model_validator

from cluster.config.base import StrictModel

# Options each backend's connector reads from kv_connector_extra_config
# (vLLM 0.26/0.29: kv_offload/cpu/spec.py, kv_offload/base.py,
# kv_connector/v1/offloading/config.py; lmcache_mp_connector.py).
# cpu_bytes_to_use is absent on purpose: size_gib sets it.
BACKEND_OPTIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "native": frozenset(
            {
                "block_size",  # tokens per offloaded chunk (a multiple of the GPU block)
                "blocks_per_chunk",  # the same, in GPU blocks
                "eviction_policy",  # "lru" (default) or "arc"
                "store_threshold",  # lookups before a block is offloaded (0/1: always)
                "max_tracker_size",  # entries of the store_threshold tracker
                "offload_prompt_only",  # default true: decode KV is not offloaded
            }
        ),
        "lmcache": frozenset(
            {"lmcache.mp.host", "lmcache.mp.port", "lmcache.mp.mq_timeout", "lmcache.mp.heartbeat_interval"}
        ),
    }
)


# The connector vLLM derives from kv_offloading_backend (without
# VLLM_USE_SIMPLE_KV_OFFLOAD, which would make native SimpleCPUOffloadConnector).
CONNECTORS: Mapping[str, str] = MappingProxyType({"native": "OffloadingConnector", "lmcache": "LMCacheMPConnector"})
# Host RAM a native tier needs beyond its size, per replica (GiB): page
# tables and page-locking bookkeeping of pinned memory (8 bytes per 4 KiB
# page, 0.2 %: 0.5 GiB at 256 GiB), the connector's block-hash LRU and its
# copy-pointer buffers (MiBs). Rounded up to whole GiB with the size.
PINNED_OVERHEAD_GIB = 1
# Effective host->GPU copy rate of one GPU (GB/s, decimal) for the planner's
# reload estimate. PCIe Gen5 x16 moves ~50 GB/s of large pinned copies (the
# figure vLLM's offloading blog quotes); the connector copies many block-sized
# pieces (64 KiB per layer and 16-token block for InternLM2.5 on one GPU), so
# half of that is the planning default. Gen4 hosts: ~12. Measured on an H200
# (PCIe Gen5, vLLM 0.26, benchmarks/results/gpu/kv_tier.json): 46.8 GB/s of
# copy time, so the default is conservative there.
DEFAULT_HOST_TO_GPU_GB_S = 25.0


class KVTierConfig(StrictModel):
    """Host-RAM KV tier of each replica of a pool (vLLM KV offloading)."""

    backend: Literal["native", "lmcache"] = Field(
        default="native",
        description="native: vLLM's OffloadingConnector, host RAM inside the engine's "
        "processes; lmcache: vLLM's LMCacheMPConnector, a client of a separate LMCache "
        "server that you run (needs the lmcache package in the image).",
    )
    size_gib: float = Field(
        gt=0,
        description="Host RAM of the tier per replica, in GiB (vLLM's kv_offloading_size). "
        "With tensor_parallel_size > 1 this is the total over the replica's ranks: each "
        "rank holds size_gib / tensor_parallel_size. lmcache: the server's capacity, for "
        "the planner only (vLLM does not pass it on).",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Backend options, passed to vLLM as kv_transfer_config."
        "kv_connector_extra_config. native: block_size | blocks_per_chunk, "
        "eviction_policy (lru, arc), store_threshold, max_tracker_size, "
        "offload_prompt_only. lmcache: lmcache.mp.host, lmcache.mp.port, "
        "lmcache.mp.mq_timeout, lmcache.mp.heartbeat_interval. Other keys are refused.",
    )

    host_to_gpu_gb_s: float = Field(
        default=DEFAULT_HOST_TO_GPU_GB_S,
        gt=0,
        description="Effective host->GPU copy rate of one GPU in GB/s, for the planner's "
        "reload-time estimate only (each tensor-parallel rank reloads its share over its own "
        "link). Default 25: half of PCIe Gen5 x16's ~50 GB/s, because the connector copies "
        "block-sized pieces; use ~12 on PCIe Gen4.",
    )

    @property
    def pod_memory_gib(self) -> int:
        """Host RAM the tier adds to the pod of one replica (GiB; helm/ mirrors this).

        lmcache keeps KV in its own server process, outside the engine's pod.
        """
        if self.backend != "native":
            return 0
        return math.ceil(self.size_gib) + PINNED_OVERHEAD_GIB

    @model_validator(mode="after")
    def _known_options(self) -> "KVTierConfig":
        known = BACKEND_OPTIONS[self.backend]
        unknown = sorted(set(self.options) - known)
        if unknown:
            raise ValueError(
                f"kv_tier.options {unknown} are not options of the {self.backend} backend "
                f"(known: {sorted(known)}); vLLM would ignore them silently"
            )
        if "block_size" in self.options and "blocks_per_chunk" in self.options:
            raise ValueError("kv_tier.options: set block_size or blocks_per_chunk, not both (vLLM refuses both)")
        for key in ("block_size", "blocks_per_chunk", "max_tracker_size"):
            value = self.options.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"kv_tier.options.{key} must be a positive integer, got {value!r}")
        policy = self.options.get("eviction_policy")
        if policy is not None and policy not in ("lru", "arc"):
            raise ValueError(f"kv_tier.options.eviction_policy must be lru or arc, got {policy!r}")
        return self

    def engine_kwargs(self) -> dict[str, Any]:
        """vLLM engine arguments of the tier (Ray Serve LLM engine_kwargs)."""
        kwargs: dict[str, Any] = {
            "kv_offloading_backend": self.backend,
            "kv_offloading_size": self.size_gib,
        }
        if self.options:
            # vLLM adds cpu_bytes_to_use (native) to this dict. The connector
            # and role are what vLLM derives anyway, but Ray Serve LLM (2.58-2.60,
            # LLMConfig._setup_kv_connector_backend) refuses a kv_transfer_config
            # without kv_connector ("Connector type is not specified.").
            kwargs["kv_transfer_config"] = {
                "kv_connector": CONNECTORS[self.backend],
                "kv_role": "kv_both",
                "kv_connector_extra_config": dict(self.options),
            }
        return kwargs
