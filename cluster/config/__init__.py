"""The cluster's one configuration schema, one file per area.

A profile (YAML) describes models and the pools that serve them. The same
schema is read by the Serve app at start-up (``deployments.app``), by the CLI
and planner (``cluster``), and by the Helm chart, which embeds the profile in
the RayService's ``serveConfigV2`` as the app's ``args`` and validates it with
this schema (``helm/values.schema.json``).

  base.py       StrictModel: unknown keys refused
  model.py      ModelConfig: weights, tokenizer, chat format, RoPE facts
  pool.py       PoolConfig and its engine, replicas, admission, routing and rotary base
  kv_tier.py    KVTierConfig: a pool's host-RAM KV tier (vLLM KV offloading)
  ingress.py    IngressConfig, AuthConfig
  documents.py  DocumentsConfig, DocumentStoreConfig, StoreLimits
  cluster.py    ClusterConfig: the whole profile, checked across areas
  loader.py     load_config, apply_override, profile_path
"""

from cluster.config.base import StrictModel
from cluster.config.cluster import ClusterConfig
from cluster.config.documents import (
    DEFAULT_DOCUMENT_SYSTEM_PROMPT,
    DocumentsConfig,
    DocumentStoreConfig,
    StoreLimits,
)
from cluster.config.ingress import AuthConfig, IngressConfig
from cluster.config.loader import apply_override, load_config, profile_path
from cluster.config.kv_tier import KVTierConfig
from cluster.config.model import ModelConfig
from cluster.config.pool import (
    AdmissionConfig, EngineConfig, PoolConfig, ReplicaConfig, RopeBaseConfig, RopeBaseMode, RoutingConfig,
)

__all__ = [
    "DEFAULT_DOCUMENT_SYSTEM_PROMPT",
    "AdmissionConfig",
    "AuthConfig",
    "ClusterConfig",
    "DocumentStoreConfig",
    "DocumentsConfig",
    "EngineConfig",
    "IngressConfig",
    "KVTierConfig",
    "ModelConfig",
    "PoolConfig",
    "ReplicaConfig",
    "RopeBaseConfig",
    "RopeBaseMode",
    "RoutingConfig",
    "StoreLimits",
    "StrictModel",
    "apply_override",
    "load_config",
    "profile_path",
]
