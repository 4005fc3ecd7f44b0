"""A small real cluster with two ingress replicas on one password-protected Redis.

One model and its short pool from the cpu-demo profile (one engine replica),
`ingress.replicas: 2`, and the document store in a Redis started here:
Debian's `redis-server` (`make redis-server` installs it) on a free loopback
port, with a password and its append-only file on, as the Helm chart runs it.
The password reaches the ingress replicas as the chart's does: an environment
variable that `documents.store.password_env` names. Without redis-server the
package skips.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from benchmarks.common.ports import free_loopback_port
from cluster.config import ClusterConfig, load_config, profile_path
from tests.support.redis_server import ping
from tests.support.redis_server import redis_server as start_redis

MODEL = "internlm2_5-7b-chat-1m"
POOL = "il25-short"
PASSWORD_ENV = "LONGCTX_E2E_REDIS_PASSWORD"


@dataclass(frozen=True)
class RedisServer:
    url: str  # without the password
    password: str

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, password=self.password, socket_timeout=5, decode_responses=True)


@pytest.fixture(scope="package")
def redis_server(tmp_path_factory) -> RedisServer:
    password = secrets.token_urlsafe(24)
    with start_redis(tmp_path_factory.mktemp("redis"), db=1, password=password, append_only=True) as url:
        # The server really wants the password: a client without it is refused.
        assert not ping(url, None)
        yield RedisServer(url=url, password=password)


def small_profile(demo_models: Path, redis: RedisServer, port: int) -> dict:
    """cpu-demo cut to one model and its short pool (one replica), two ingress replicas on Redis."""
    raw = yaml.safe_load(profile_path("cpu-demo").read_text())
    model = raw["models"][MODEL]
    model["path"] = str(demo_models / Path(model["path"]).name)
    (pool,) = [p for p in raw["pools"] if p["name"] == POOL]
    pool["replicas"] = {"min": 1, "max": 1}
    raw["models"] = {MODEL: model}
    raw["pools"] = [pool]
    raw["ingress"] = {"host": "127.0.0.1", "port": port, "replicas": 2}
    raw["documents"] = {"store": {"backend": "redis", "url": redis.url, "password_env": PASSWORD_ENV,
                                  "key_prefix": f"e2e:{secrets.token_hex(4)}:"}}
    return raw


@dataclass(frozen=True)
class RunningCluster:
    base_url: str
    config: ClusterConfig


@pytest.fixture(scope="package")
def cluster(demo_models, redis_server, tmp_path_factory) -> RunningCluster:
    from cluster.cli import start_cluster
    from cluster.direct_ingress import skip_draining_without_balancer

    port = free_loopback_port()
    profile = tmp_path_factory.mktemp("profile") / "two-ingress-redis.yaml"
    profile.write_text(yaml.safe_dump(small_profile(demo_models, redis_server, port)))
    # Ray's workers (the ingress replicas among them) inherit the environment
    # of the process that starts the local Ray: the Secret's role on Kubernetes.
    os.environ[PASSWORD_ENV] = redis_server.password
    skip_draining_without_balancer()
    config = load_config(profile)
    assert config.ingress.replicas == 2 and config.documents.store.backend == "redis"
    start_cluster(config, str(profile), [], address=None, metrics_port=free_loopback_port())
    running = RunningCluster(base_url=f"http://127.0.0.1:{port}", config=config)
    # serve.run returns once every deployment is healthy; the proxy answers now.
    assert httpx.get(f"{running.base_url}/healthz", timeout=30).status_code == 200
    yield running
    from tests.e2e.helpers import stop_local_cluster

    try:
        stop_local_cluster()
    finally:
        os.environ.pop(PASSWORD_ENV, None)


@pytest.fixture(scope="package")
def http(cluster) -> httpx.Client:
    with httpx.Client(base_url=cluster.base_url, timeout=300) as client:
        yield client
