"""Serve's direct ingress on the running cluster: the ingress replica serves the same API on its own port.

The package's cluster runs with ``ingress.direct_ingress`` (tests/e2e/conftest.py),
so every other e2e test goes through Serve's proxy while these go around it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import openai
import pytest

from cluster.cli import APP_NAME
from cluster.direct_ingress import ingress_replica_urls

pytestmark = pytest.mark.e2e

IL25 = "internlm2_5-7b-chat-1m"


@pytest.fixture(scope="module")
def replica_url(cluster) -> str:
    urls = ingress_replica_urls(APP_NAME)
    assert len(urls) == cluster.config.ingress.replicas, urls
    return urls[0]


def test_each_ingress_replica_listens_on_its_own_port_on_the_profiles_host(replica_url, cluster):
    parts = urlsplit(replica_url)
    assert parts.hostname == cluster.config.ingress.host
    assert parts.port != urlsplit(cluster.base_url).port
    assert httpx.get(f"{replica_url}/healthz", timeout=30).json() == {"status": "ok"}


def test_the_replicas_port_serves_the_same_api(replica_url, cluster):
    client = openai.OpenAI(base_url=f"{replica_url}/v1", api_key="unused", timeout=300, max_retries=0)
    assert {m.id for m in client.models.list().data} == set(cluster.config.models)
    raw = client.chat.completions.with_raw_response.create(
        model=IL25, messages=[{"role": "user", "content": "Hello there"}], max_tokens=8)
    assert raw.headers["x-pool"] == cluster.pools_of(IL25)[0]
    assert raw.headers["x-replica"]
    assert raw.parse().usage.prompt_tokens == int(raw.headers["x-prompt-tokens"])
    chunks = list(client.completions.create(model=IL25, prompt="Once upon a time", max_tokens=4, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices)


def test_client_mistakes_get_the_same_4xx_there(replica_url, http):
    body = {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}
    direct = httpx.post(f"{replica_url}/v1/chat/completions", json=body, timeout=30)
    proxied = http.post("/v1/chat/completions", json=body)
    assert direct.status_code == proxied.status_code == 404
    assert direct.json() == proxied.json()
    assert "no-such-model" in direct.json()["error"]["message"]
