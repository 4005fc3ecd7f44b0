"""The series vLLM's engine exports through Ray Serve LLM, read off vLLM's own code.

Ray Serve LLM (``log_engine_metrics``) hands vLLM ``RayPrometheusStatLogger``
(vllm/v1/metrics/ray_wrappers.py): the same metric definitions as vLLM's
Prometheus logger, KV-connector metrics included (``RayKVConnectorProm``),
written to ``ray.util.metrics`` under a sanitised name (``:`` -> ``_``). Ray's
agent then adds ``ray_`` and Prometheus' suffixes. Here that logger is built
for a real engine config with a stand-in for ``ray.util.metrics`` that keeps
what vLLM declares and records, so the names the dashboards and rules use
are checked against this vLLM without an engine, a GPU or a Ray cluster.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from pathlib import Path

# The series the KV tier's rules and panels read (issue 11), by the name vLLM
# declares them under: lookups in the tier (any connector), and the native
# tier's copies tier -> GPU (load) and GPU -> tier (store), bytes and seconds.
TIER_SERIES = {
    "ray_vllm_external_prefix_cache_queries_total": "vllm_external_prefix_cache_queries",
    "ray_vllm_external_prefix_cache_hits_total": "vllm_external_prefix_cache_hits",
    "ray_vllm_kv_offload_load_bytes_total": "vllm_kv_offload_load_bytes",
    "ray_vllm_kv_offload_store_bytes_total": "vllm_kv_offload_store_bytes",
    "ray_vllm_kv_offload_load_time_total": "vllm_kv_offload_load_time",
    "ray_vllm_kv_offload_store_time_total": "vllm_kv_offload_store_time",
}


@dataclass
class Declared:
    kind: str  # Counter, Gauge or Histogram
    tag_keys: tuple[str, ...]
    values: dict[tuple, float] = field(default_factory=dict)  # sorted tag items -> total


class RayMetricsStandIn:
    """What ``ray.util.metrics`` would have been given, by sanitised name."""

    def __init__(self):
        self.declared: dict[str, Declared] = {}
        declared = self.declared

        class _Metric:
            def __init__(self, name, description="", tag_keys=(), boundaries=None):
                self._name, self._tag_keys = name, tuple(tag_keys)
                declared.setdefault(name, Declared(type(self).__name__, self._tag_keys))

            def _add(self, value, tags):
                values = declared[self._name].values
                key = tuple(sorted(tags.items()))
                values[key] = values.get(key, 0) + value

            inc = observe = _add

            def set(self, value, tags):
                declared[self._name].values[tuple(sorted(tags.items()))] = value

        self.module = types.SimpleNamespace(
            Counter=type("Counter", (_Metric,), {}),
            Gauge=type("Gauge", (_Metric,), {}),
            Histogram=type("Histogram", (_Metric,), {}),
        )

    def exported(self) -> dict[str, str]:
        """Prometheus series name -> the declared name, as Ray's agent exports them."""
        suffixes = {"Counter": ("_total",), "Gauge": ("",), "Histogram": ("_bucket", "_sum", "_count")}
        return {f"ray_{name}{suffix}": name
                for name, d in self.declared.items() for suffix in suffixes[d.kind]}

    def recorded(self, name: str) -> dict[tuple, float]:
        return self.declared[name].values


def tier_engine_config(model: Path, size_gib: float = 0.5):
    """A vLLM config with the native host-RAM tier on, from the engine arguments
    the pool's kv_tier becomes (kv_offloading_backend / kv_offloading_size)."""
    from vllm.engine.arg_utils import EngineArgs

    return EngineArgs(model=str(model), trust_remote_code=True, max_model_len=2048, dtype="float32",
                      enforce_eager=True, kv_offloading_backend="native",
                      kv_offloading_size=size_gib).create_engine_config()


def ray_stat_logger(vllm_config, monkeypatch) -> tuple[object, RayMetricsStandIn]:
    """vLLM's RayPrometheusStatLogger over the stand-in (monkeypatch undoes it)."""
    from vllm.v1.metrics import ray_wrappers

    stand_in = RayMetricsStandIn()
    monkeypatch.setattr(ray_wrappers, "ray_metrics", stand_in.module)
    return ray_wrappers.RayPrometheusStatLogger(vllm_config), stand_in
