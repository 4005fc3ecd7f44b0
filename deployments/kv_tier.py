"""A pool's KV tier as vLLM engine arguments, after checking the installed vLLM can run it.

The config (cluster/config/kv_tier.py) knows what each backend accepts; only
here, where the app is built and vLLM is importable, can we ask whether the
installed vLLM has the offloading arguments at all (they arrived in the 0.2x
series; Ray Serve LLM would reject the unknown key only when the replica
starts, minutes later) and whether the lmcache package the LMCache connector
imports is there. Refusing at build time turns a crash-looping replica into
one clear error from ``serve run`` / the RayService.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any, Callable, Collection

from cluster.config import KVTierConfig

# The engine arguments the tier becomes (vllm.engine.arg_utils.EngineArgs).
TIER_ENGINE_ARGS = ("kv_offloading_size", "kv_offloading_backend", "kv_transfer_config")


class KVTierUnsupported(ValueError):
    """The installed vLLM (or its environment) cannot run the configured tier."""


def installed_engine_args() -> frozenset[str]:
    """Names of the installed vLLM's engine arguments."""
    from vllm.engine.arg_utils import EngineArgs

    return frozenset(f.name for f in dataclasses.fields(EngineArgs))


def check_supported(
    pool_name: str,
    tier: KVTierConfig,
    *,
    engine_args: Collection[str] | None = None,
    find_spec: Callable[[str], Any] = importlib.util.find_spec,
) -> None:
    """Raise KVTierUnsupported when the installed vLLM cannot run ``tier``."""
    names = installed_engine_args() if engine_args is None else engine_args
    missing = [arg for arg in TIER_ENGINE_ARGS if arg not in names]
    if missing:
        raise KVTierUnsupported(
            f"pool {pool_name}: kv_tier needs vLLM engine arguments {missing}, which the "
            "installed vLLM lacks; use a vLLM with KV offloading (0.26 or newer)"
        )
    if tier.backend == "lmcache" and find_spec("lmcache") is None:
        raise KVTierUnsupported(
            f"pool {pool_name}: kv_tier.backend lmcache needs the lmcache package in the "
            "engine image (vLLM's LMCacheMPConnector imports it) and a running LMCache "
            "server (kv_tier.options lmcache.mp.host / lmcache.mp.port); use backend native "
            "otherwise"
        )


def tier_engine_kwargs(pool_name: str, tier: KVTierConfig | None, **check: Any) -> dict[str, Any]:
    """The tier's engine_kwargs for Ray Serve LLM; {} without a tier."""
    if tier is None:
        return {}
    check_supported(pool_name, tier, **check)
    return tier.engine_kwargs()
