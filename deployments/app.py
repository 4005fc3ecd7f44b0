"""Serve application builder: one ingress plus one engine deployment per pool.

Import path for `serve run`, the CLI and the Helm chart's serveConfigV2:
``deployments.app:build_app`` with args ``{"profile": <name or path>}`` or
``{"cluster": <inline profile>}``, and optional ``"overrides": [...]``.
"""

from __future__ import annotations

from typing import Any, Mapping

from cluster.config import ClusterConfig, load_config, profile_path
from deployments.engines import build_pool_deployment
from deployments.ingress.deployment import IngressDeployment


def config_from_args(args: Mapping[str, Any]) -> ClusterConfig:
    overrides = list(args.get("overrides") or [])
    if "cluster" in args:
        return load_config(args["cluster"], overrides)
    if "profile" in args:
        return load_config(profile_path(str(args["profile"])), overrides)
    raise ValueError("app args need either 'profile' (name or YAML path) or 'cluster' (inline profile)")


def build_app(args: Mapping[str, Any]):
    cluster = config_from_args(args)
    pools = {pool.name: build_pool_deployment(cluster, pool) for pool in cluster.pools}
    return IngressDeployment.options(num_replicas=cluster.ingress.replicas).bind(
        cluster.model_dump(mode="json"), pools
    )
