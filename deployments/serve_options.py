"""The Serve options of each deployment that Serve changes on live replicas, without a restart.

Serve hashes an application's ``import_path``, ``runtime_env`` and ``args``
into its code version (``ray.serve._private.deploy_utils.get_app_code_version``);
a new code version rebuilds the application and restarts every deployment.
Options listed per deployment in the serve config's
``applications[].deployments[]`` are applied on top of what the code built
(``application_state.override_deployment_info``), and when only they change
Serve keeps the code version. None of the options here is ``HeavyWeight`` in
Serve's ``DeploymentConfig``: ``autoscaling_config``, ``user_config`` and
``graceful_shutdown_wait_loop_s`` are ``NeedsActorReconfigure`` (the replica's
``reconfigure()``), ``graceful_shutdown_timeout_s`` is ``NeedsReconfigure``
(the controller's own record). So a pool scales, or gets a longer drain, with
no engine restarted.

Hence one split, used by both ways of starting the app:

* the Helm chart renders these options per deployment in serveConfigV2
  (``longctx.serveDeployments`` in helm/templates/_helpers.tpl computes the same;
  tests/helm/test_scaling.py compares) and strips what they carry from the
  app's args (each pool's ``replicas`` and ``graceful_shutdown_timeout_s``);
* ``python -m cluster run`` has no config file: the builder (deployments/app.py,
  deployments/engines.py) sets the same options in code from the profile.

The ingress is told every pool's replica bounds through its ``user_config``:
its admission limit of a pool defaults to 2 x replicas.max x max_num_seqs
(cluster/config/pool.py), and /v1/pools shows them. A change of one pool's
bounds therefore reconfigures that pool's deployment and the ingress (a call
to its ``reconfigure()``), and restarts nothing.
"""

from __future__ import annotations

from typing import Any, Mapping

from cluster.config import ClusterConfig, PoolConfig, ReplicaConfig

# Profile keys of a pool that reach Serve as deployment options, not as args.
POOL_KEYS_AS_SERVE_OPTIONS = ("replicas", "graceful_shutdown_timeout_s")
INGRESS_POOL_REPLICAS_KEY = "pool_replicas"


def autoscaling_config(replicas: ReplicaConfig) -> dict[str, Any]:
    """Serve's autoscaling_config of a pool: also a fixed count (min == max)."""
    return {
        "min_replicas": replicas.min,
        "max_replicas": replicas.max,
        "initial_replicas": replicas.initial if replicas.initial is not None else replicas.min,
        "target_ongoing_requests": replicas.target_ongoing_requests,
    }


def pool_serve_options(cluster: ClusterConfig, pool: PoolConfig) -> dict[str, Any]:
    """A pool deployment's options that Serve updates without restarting its replicas."""
    return {
        "autoscaling_config": autoscaling_config(pool.replicas),
        "graceful_shutdown_timeout_s": cluster.graceful_shutdown_timeout_s(pool.name),
    }


def ingress_serve_options(cluster: ClusterConfig) -> dict[str, Any]:
    """The ingress deployment's: every pool's replica bounds, and a drain as long as the longest pool's.

    An ingress replica relays its requests' answers to the end, so a stopping
    one must wait as long as the slowest pool it relays for.
    """
    return {
        "user_config": {
            INGRESS_POOL_REPLICAS_KEY: {pool.name: pool.replicas.model_dump() for pool in cluster.pools}
        },
        "graceful_shutdown_timeout_s": max(cluster.graceful_shutdown_timeout_s(p.name) for p in cluster.pools),
    }


def pool_replicas_from_user_config(user_config: Mapping[str, Any] | None) -> dict[str, ReplicaConfig]:
    """The replica bounds the ingress's user_config carries, validated (empty without one)."""
    raw = (user_config or {}).get(INGRESS_POOL_REPLICAS_KEY) or {}
    return {name: ReplicaConfig.model_validate(bounds) for name, bounds in raw.items()}


def without_serve_options(profile: Mapping[str, Any]) -> dict[str, Any]:
    """A raw profile without what reaches Serve as deployment options: the app's args of the chart."""
    stripped = dict(profile)
    stripped["pools"] = [
        {k: v for k, v in pool.items() if k not in POOL_KEYS_AS_SERVE_OPTIONS} for pool in profile["pools"]
    ]
    return stripped
