"""A cluster on two Ray nodes of this machine: a head, and a worker node joined with ``ray start --address``.

The app is deployed as the Helm chart deploys it on KubeRay: a declarative
serve config whose args are the profile less each pool's replicas and drain
timeout, which are the deployments' options (deployments/serve_options.py).
One small pool of the demo model, two replicas, one per node: each node
advertises one ``e2e_slot`` and each replica needs one. The ingress asks for
more CPUs than a worker node has, so it stays on the head with Serve's
controller and proxy (HeadOnly: two proxies on one machine would want one
port). Token auth throughout: the nodes listen on every interface.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from ray._private.authentication_test_utils import reset_auth_token_state  # Ray's own reset

from benchmarks.common.ports import free_loopback_port
from tests.support import lanes
from tests.e2e_nodes.nodes import RayNode, node_id_with, ray_env, start_node

APP = "longctx"
POOL = "short"
MODEL = "internlm2_5-7b-chat-1m"
SLOT = "e2e_slot"
# A pool replica's placement bundle: the replica actor's CPU, the engine's, and a slot.
WORKER_CPUS = 2
# More than a worker node has: the ingress can only be placed on the head.
INGRESS_CPUS = 3
# Longer than any drain deadline the tests give, so Serve stops a draining
# node's replica at once (it has no room elsewhere) and lets it finish.
GRACEFUL_SHUTDOWN_S = 600
START_S = 900  # two engine starts on two busy cores


def profile(models: Path, data_dir: Path, port: int) -> dict:
    return {
        "device": "cpu",
        "models": {MODEL: {"path": str(models / "tiny-internlm2_5-chat-1m"), "stop_token_ids": [2, 4],
                           "default_max_tokens": 16}},
        "pools": [{
            "name": POOL, "model": MODEL, "band": [0, 4096],
            "engine": {"max_model_len": 4096, "max_num_seqs": 4, "dtype": "float32", "enforce_eager": True,
                       "extra": {"num_gpu_blocks_override": lanes.kv_blocks(32_768)}},
            "replicas": {"min": 2, "max": 2},
            "worker_resources": {"CPU": 1, SLOT: 1},
            # A prompt's first 16 tokens pick its replica (affinity), so a test can aim at a node.
            "routing": {"prefix_tokens": 16},
            "request_timeout_s": 600,
            "graceful_shutdown_timeout_s": GRACEFUL_SHUTDOWN_S,
        }],
        "ingress": {"host": "127.0.0.1", "port": port, "num_cpus": INGRESS_CPUS, "stream_heartbeat_s": 0},
        "documents": {"store": {"backend": "sqlite", "data_dir": str(data_dir)}},
        "engine_env": {"VLLM_CPU_KVCACHE_SPACE": "1"},
    }


def serve_config(raw_profile: dict) -> dict:
    """What the chart renders into serveConfigV2 (tests/helm/test_scaling.py checks they agree)."""
    from cluster.config import load_config
    from deployments.engines import pool_deployment_name
    from deployments.serve_options import ingress_serve_options, pool_serve_options, without_serve_options

    config = load_config(raw_profile, env={})
    deployments = [{"name": "ingress", **ingress_serve_options(config)}]
    deployments += [{"name": pool_deployment_name(p.name), **pool_serve_options(config, p)} for p in config.pools]
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": "127.0.0.1", "port": raw_profile["ingress"]["port"]},
        "applications": [{"name": APP, "route_prefix": "/", "import_path": "deployments.app:build_app",
                          "args": {"cluster": without_serve_options(raw_profile)}, "deployments": deployments}],
    }


def app_running() -> bool:
    from ray import serve

    app = serve.status().applications.get(APP)
    return app is not None and app.status == "RUNNING"


@dataclass
class TwoNodeCluster:
    base_url: str
    gcs_address: str
    env: dict[str, str]
    head: RayNode
    base: Path
    profile: dict
    workers: list[RayNode] = field(default_factory=list)

    def deploy(self, raw_profile: dict) -> None:
        """Apply the serve config for ``raw_profile`` (Serve's declarative path, as KubeRay takes)."""
        from ray.serve.context import _get_global_client
        from ray.serve.schema import ServeDeploySchema

        _get_global_client().deploy_apps(ServeDeploySchema.model_validate(serve_config(raw_profile)))

    def add_worker(self, name: str) -> tuple[RayNode, str]:
        """A worker node with one slot for a pool replica; its Ray node id."""
        node = start_node(name, self.base, self.env, head_address=self.gcs_address, num_cpus=WORKER_CPUS,
                          resources={SLOT: 1, f"e2e_node_{name}": 1})
        self.workers.append(node)
        return node, node_id_with(f"e2e_node_{name}")


@pytest.fixture(scope="package")
def two_nodes(demo_models, tmp_path_factory):
    token = secrets.token_hex(16)
    env = ray_env(token)
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    # This process is a Ray client too (serve.run, status); Ray reads these when it connects.
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
    # Ray caches the token a process first loaded: after another package's
    # local cluster in this pytest process, it would send that cluster's token.
    reset_auth_token_state()
    # Short: sockets live under it, and their paths may not pass 107
    # characters (a worker's basetemp, /tmp/pytest-of-<user>/pytest-<n>/popen-gw1/, is too long).
    base = Path(tempfile.mkdtemp(prefix="e2e-nodes-"))
    head_port, api_port = free_loopback_port(), free_loopback_port()
    head = start_node("head", base, env, head_port=head_port, num_cpus=INGRESS_CPUS + WORKER_CPUS,
                      resources={SLOT: 1})
    cluster = TwoNodeCluster(f"http://127.0.0.1:{api_port}", f"127.0.0.1:{head_port}", env, head, base,
                             profile(demo_models, tmp_path_factory.mktemp("docs"), api_port))
    try:
        import ray
        from ray import serve

        from tests.e2e.helpers import wait_until

        ray.init(address=cluster.gcs_address, logging_level="WARNING", log_to_driver=False)
        cluster.add_worker("w1")
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": api_port})
        cluster.deploy(cluster.profile)
        wait_until(app_running, START_S, "the app to run on both nodes")
        assert httpx.get(f"{cluster.base_url}/healthz", timeout=30).status_code == 200
        yield cluster
    finally:
        _teardown(cluster)
        shutil.rmtree(base, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_auth_token_state()


def _teardown(cluster: TwoNodeCluster) -> None:
    """This client first, then every node's processes; none may be left.

    No serve.shutdown(): it waits for replicas that a test left unplaceable
    (the drained node's replacement has no room), and the nodes go anyway.
    """
    import ray

    with contextlib.suppress(Exception):
        ray.shutdown()
    nodes = [*cluster.workers, cluster.head]
    for node in nodes:
        node.stop()
    left = [p.pid for node in nodes for p in node.processes()]
    assert left == [], f"processes of the test's Ray nodes outlived their stop: {left}"
