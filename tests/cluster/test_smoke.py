"""cluster/smoke.py's verdicts: how a pool is steered, and what a failure line says.

tests/e2e/test_smoke.py runs the check against the real CPU demo cluster, where everything
passes. The faults here (a pool that stays unavailable, one whose answer comes from another
pool, a stream that breaks, a question that fails) cannot be provoked on that shared cluster
without breaking the other tests' pools, so a fake API stands in for them: httpx's
MockTransport, answering as the ingress does (status, OpenAI-style error body, x-pool).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest

from benchmarks.common.ports import free_loopback_port
from cluster.smoke import Smoke, api_key_from_file, steering_max_tokens

POOLS = [
    {"name": "short", "model": "m", "min_tokens": 0, "max_tokens": 4096},
    {"name": "long", "model": "m", "min_tokens": 4097, "max_tokens": 10240},
]


def _error(status: int, code: str, message: str, **headers) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": message, "type": "error", "code": code}},
                          headers=headers)


def _stream(pool: str, *events: str) -> httpx.Response:
    body = "".join(f"{event}\n\n" for event in events).encode()
    return httpx.Response(200, content=body, headers={"x-pool": pool, "x-prompt-tokens": "3",
                                                      "content-type": "text/event-stream"})


def _token(text: str = "hi") -> str:
    return "data: " + json.dumps({"choices": [{"index": 0, "text": text}]})


class FakeAPI:
    """The ingress's answers, per pool (chosen by the request's max_tokens, as the bands do)."""

    def __init__(self, pools=None, ask=None):
        self.pools = pools or {}
        self.ask = ask
        self.documents: set[str] = set()
        self.seen: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.seen.append((request.method, path))
        if path == "/v1/pools":
            return httpx.Response(200, json={"object": "list", "data": POOLS})
        if path == "/v1/completions":
            body = json.loads(request.content)
            pool = "long" if body["max_tokens"] >= 4097 else "short"
            return self.pools.get(pool, lambda: _stream(pool, ": heartbeat", _token(), "data: [DONE]"))()
        if path == "/v1/documents" and request.method == "POST":
            self.documents.add("doc-1")
            return httpx.Response(201, json={"id": "doc-1", "tokens": {"m": 40}})
        if path == "/v1/documents/doc-1/ask":
            if self.ask:
                return self.ask()
            return httpx.Response(200, json={"choices": [{"index": 0, "message": {"content": "a"}}]},
                                  headers={"x-pool": "short"})
        if path == "/v1/documents/doc-1" and request.method == "DELETE":
            self.documents.discard("doc-1")
            return httpx.Response(200, json={"id": "doc-1", "deleted": True})
        if path == "/v1/documents/doc-1":
            return httpx.Response(200 if "doc-1" in self.documents else 404, json={})
        return httpx.Response(404)


def run(api: FakeAPI, timeout_s: float = 5.0) -> tuple[list[str], list[str]]:
    lines: list[str] = []
    client = httpx.Client(transport=httpx.MockTransport(api), base_url="http://api")
    return Smoke(client, time.monotonic() + timeout_s, lines.append).run(), lines


def test_steering_uses_the_bands_lower_bound():
    assert [steering_max_tokens(p) for p in POOLS] == [1, 4097]


def test_a_healthy_cluster_passes_every_step():
    api = FakeAPI()
    failures, lines = run(api)
    assert failures == []
    assert [line.split(":")[0] for line in lines] == ["pool short (m, band [0, 4096])",
                                                      "pool long (m, band [4097, 10240])", "document"]
    assert api.documents == set()


@pytest.mark.parametrize("answer, expected", [
    pytest.param(lambda: _error(503, "pool_unavailable", "pool long has no healthy replica right now",
                                **{"retry-after": "30"}),
                 "POST /v1/completions answered 503 (pool_unavailable: pool long has no healthy replica right now)",
                 id="unavailable past the deadline"),
    pytest.param(lambda: _stream("short", _token()), "routed to pool 'short' (x-pool), not long: 3 prompt tokens "
                 "+ max_tokens 4097 should land in its band", id="wrong pool"),
    pytest.param(lambda: _stream("long", 'data: {"error": {"code": "engine_failed", "message": "engine died"}}'),
                 "the stream failed: engine_failed: engine died", id="broken stream"),
    pytest.param(lambda: _stream("long", "data: [DONE]"), "the stream ended without a token", id="no token"),
])
def test_a_failing_pool_is_named_with_the_clusters_answer(answer, expected):
    failures, lines = run(FakeAPI(pools={"long": answer}))
    assert failures == [f"pool long (m, band [4097, 10240]): {expected}"]
    assert "pool short (m, band [0, 4096]): ok" in lines[0] and lines[1].endswith("FAILED")
    assert lines[2].startswith("document: ok")  # the other steps still ran


def test_a_full_pool_is_retried_after_its_retry_after():
    answers = iter([_error(429, "pool_overloaded", "full", **{"retry-after": "0.5"}),
                    _stream("long", _token())])
    failures, _ = run(FakeAPI(pools={"long": lambda: next(answers)}))
    assert failures == []


def test_a_failed_question_still_deletes_the_document():
    api = FakeAPI(ask=lambda: _error(504, "timeout", "pool short did not answer in 60 s"))
    failures, _ = run(api)
    assert failures == ["document: ask (POST /v1/documents/doc-1/ask) answered 504 (timeout: pool short did not "
                        "answer in 60 s)"]
    assert ("DELETE", "/v1/documents/doc-1") in api.seen and api.documents == set()


@pytest.mark.parametrize("text, key", [
    ("# rotated 2026-12\nalice:lc-new\nalice:lc-old\n", "lc-new"),
    ("\nlc-bare-key\n", "lc-bare-key"),
    ("lc-a,lc-b", "lc-a"),
])
def test_the_first_key_of_a_keys_file(tmp_path, text, key):
    path = tmp_path / "keys"
    path.write_text(text)
    assert api_key_from_file(path) == key


def test_a_missing_keys_file_says_so(tmp_path):
    # The chart mounts the Secret as optional: the file is absent until the Secret exists.
    with pytest.raises(SystemExit, match="no API keys file at .*/keys: does the API keys' Secret exist"):
        api_key_from_file(tmp_path / "keys")


def test_the_command_exits_1_naming_the_step_when_nothing_answers():
    url = f"http://127.0.0.1:{free_loopback_port()}"
    result = subprocess.run([sys.executable, "-m", "cluster", "smoke", "--base-url", url, "--timeout-s", "5"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stdout.splitlines()[-2:] == ["FAILED pools: ConnectError: [Errno 111] Connection refused",
                                               "smoke: 1 step(s) failed"]
