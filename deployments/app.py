"""Serve application builder: one ingress plus one engine deployment per pool.

Import path for `serve run`, the CLI and the Helm chart's serveConfigV2:
``deployments.app:build_app`` with args ``{"profile": <name or path>}`` or
``{"cluster": <inline profile>}``, and optional ``"overrides": [...]``.

Each pool's replica bounds and drain timeout, and the ingress's view of them,
are set here in code from the profile, as Serve deployment options
(deployments/serve_options.py). The Helm chart renders the same options in
serveConfigV2's ``deployments`` list, where they win over these, and leaves
them out of the args: the args are the application's code version, and
scaling a pool must not restart every engine. With the chart's args the
profile's pools therefore carry no ``replicas``: their defaults here are
overridden by the config's options before any replica starts.
"""

from __future__ import annotations

from typing import Any, Mapping

from cluster.config import ClusterConfig, load_config, profile_path
from deployments.engines import build_pool_deployment
from deployments.ingress.deployment import IngressDeployment
from deployments.serve_options import ingress_serve_options


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
    return IngressDeployment.options(
        num_replicas=cluster.ingress.replicas, ray_actor_options={"num_cpus": cluster.ingress.num_cpus},
        **ingress_serve_options(cluster),
    ).bind(
        cluster.model_dump(mode="json"), pools
    )
