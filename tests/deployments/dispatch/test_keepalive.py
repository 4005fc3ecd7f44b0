"""Keep-alive before the first token, in-process: the real app and request path,
one fake pool handle whose engine answers after a chosen delay.

The e2e twin (tests/e2e/test_keepalive.py) shows the same on the real stack;
here every branch (fast answer, beats, errors after the commit) is cheap.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from cluster.config import load_config, profile_path
from deployments.ingress.http import create_app
from deployments.ingress.service import Ingress
from deployments.replica_tag import ReplicaTag
from deployments.errors import ErrorCode

IL25 = "internlm2_5-7b-chat-1m"
POOL = "il25-long"
REPLICA = "pool-il25-long#r1"
LONG_PROMPT = [100 + i % 500 for i in range(5000)]  # in il25-long's band [4097, 10240]


class Completion(BaseModel):
    id: str = "cmpl-1"
    object: str = "text_completion"
    model: str = IL25
    choices: list = [{"index": 0, "text": "hi", "finish_reason": "stop", "logprobs": None}]
    usage: dict = {"prompt_tokens": 5000, "completion_tokens": 1, "total_tokens": 5001}


class FakeStream:
    """The pool handle's response stream: the replica tag at once, then the engine after ``delay_s``."""

    def __init__(self, delay_s: float, stream: bool, fail: bool):
        self.delay_s, self.stream, self.fail = delay_s, stream, fail
        self.cancelled = False
        self._items = None

    def cancel(self):
        self.cancelled = True

    def __aiter__(self):
        return self

    async def _gen(self):
        yield ReplicaTag(REPLICA)
        await asyncio.sleep(self.delay_s)  # the prefill
        if self.fail:
            raise RuntimeError("engine died")
        if self.stream:
            yield 'data: {"id": "c", "object": "text_completion", "choices": [{"index": 0, "text": "hi"}]}\n\n'
            yield "data: [DONE]\n\n"
        else:
            yield Completion()

    async def __anext__(self):
        if self._items is None:
            self._items = self._gen()
        return await self._items.__anext__()


class FakeHandle:
    deployment_name = f"pool-{POOL}"

    def __init__(self):
        self.delay_s, self.fail, self.streams = 0.0, False, []
        self.completions = self

    def options(self, **_):
        return self

    def remote(self, request, _raw):
        stream = FakeStream(self.delay_s, bool(request.stream), self.fail)
        self.streams.append(stream)
        return stream


def _client(demo_models, tmp_path, overrides):
    config = load_config(profile_path("cpu-demo"), [f"documents.store.data_dir={tmp_path}", *overrides], env={})
    handle = FakeHandle()
    # No lifespan (no `with`): the pool-health poll would ask a real Serve.
    return TestClient(create_app(Ingress(config.model_dump(mode="json"), {POOL: handle}))), handle


@pytest.fixture
def beating(demo_models, tmp_path):
    return _client(demo_models, tmp_path, [f"pools.{POOL}.stream_heartbeat_s=0.1",
                                           f"pools.{POOL}.nonstream_heartbeat_s=0.1",
                                           f"pools.{POOL}.request_timeout_s=2"])


def _post(client, stream: bool):
    return client.post("/v1/completions", json={"model": IL25, "prompt": LONG_PROMPT, "max_tokens": 4,
                                                "stream": stream})


def test_fast_answer_is_unchanged(beating):
    client, handle = beating
    response = _post(client, stream=True)
    assert response.status_code == 200
    assert response.headers["x-replica"] == REPLICA
    assert not response.text.startswith(":"), response.text
    assert response.text.endswith("data: [DONE]\n\n")


def test_slow_stream_is_committed_with_comments_before_the_first_token(beating):
    client, handle = beating
    handle.delay_s = 0.55
    response = _post(client, stream=True)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-pool"] == POOL and response.headers["x-replica"] == REPLICA
    head, _, tail = response.text.partition("data: ")
    comments = [line for line in head.split("\n") if line]
    assert len(comments) >= 3 and all(line.startswith(": prefill ") and line.endswith("s") for line in comments)
    assert '"text": "hi"' in tail and response.text.endswith("data: [DONE]\n\n")


def test_timeout_after_commit_is_an_sse_error_event_then_done(beating):
    client, handle = beating
    handle.delay_s = 5  # past the pool's request_timeout_s of 2 s
    response = _post(client, stream=True)
    assert response.status_code == 200
    events = [block for block in response.text.split("\n\n") if block.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    error = json.loads(events[-2].removeprefix("data: "))["error"]
    assert error["code"] == ErrorCode.TIMEOUT and error["type"] == "server_error" and "message" in error
    assert handle.streams[-1].cancelled


def test_engine_failure_after_commit_is_an_sse_error_event(beating):
    client, handle = beating
    handle.delay_s, handle.fail = 0.3, True
    response = _post(client, stream=True)
    events = [block for block in response.text.split("\n\n") if block.startswith("data: ")]
    assert json.loads(events[0].removeprefix("data: "))["error"]["code"] == ErrorCode.ENGINE_FAILED
    assert events[-1] == "data: [DONE]"


def test_client_errors_before_the_heartbeat_stay_4xx(beating):
    client, _ = beating
    response = client.post("/v1/completions", json={"model": IL25, "prompt": LONG_PROMPT, "max_tokens": 9000,
                                                    "stream": True})
    assert response.status_code == 413


def test_nonstream_keepalive_leads_with_whitespace_then_json(beating):
    client, handle = beating
    handle.delay_s = 0.55
    response = _post(client, stream=False)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.text.startswith(" ") and len(response.text) - len(response.text.lstrip()) >= 3
    assert response.json()["choices"][0]["text"] == "hi"  # still one valid JSON document


def test_nonstream_error_after_commit_is_an_error_body(beating):
    client, handle = beating
    handle.delay_s = 5
    response = _post(client, stream=False)
    assert response.status_code == 200
    assert response.json()["error"]["code"] == ErrorCode.TIMEOUT


def test_heartbeat_off_waits_and_keeps_errors_as_status(demo_models, tmp_path):
    client, handle = _client(demo_models, tmp_path, [f"pools.{POOL}.stream_heartbeat_s=0",
                                                     f"pools.{POOL}.request_timeout_s=0.5"])
    handle.delay_s = 2
    response = _post(client, stream=True)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == ErrorCode.TIMEOUT


def test_nonstream_keepalive_is_off_by_default(demo_models, tmp_path):
    client, handle = _client(demo_models, tmp_path, [f"pools.{POOL}.request_timeout_s=0.5"])
    handle.delay_s = 2
    assert _post(client, stream=False).status_code == 504


def _post_with(client, heartbeat: str):
    return client.post("/v1/completions", headers={"x-stream-heartbeat": heartbeat},
                       json={"model": IL25, "prompt": LONG_PROMPT, "max_tokens": 4, "stream": True})


def test_blank_header_beats_with_bare_newlines(beating):
    client, handle = beating
    handle.delay_s = 0.55
    response = _post_with(client, "blank")
    assert response.status_code == 200 and response.headers["x-replica"] == REPLICA
    head, _, tail = response.text.partition("data: ")
    assert len(head) >= 3 and set(head) == {"\n"}, repr(head)
    assert '"text": "hi"' in tail and response.text.endswith("data: [DONE]\n\n")


def test_blank_frame_from_the_pool_config(demo_models, tmp_path):
    client, handle = _client(demo_models, tmp_path, [f"pools.{POOL}.stream_heartbeat_s=0.1",
                                                     f"pools.{POOL}.stream_heartbeat_frame=blank"])
    handle.delay_s = 0.55
    head, _, _ = _post(client, stream=True).text.partition("data: ")
    assert len(head) >= 3 and set(head) == {"\n"}, repr(head)
    # The header still picks comments for one request.
    head, _, _ = _post_with(client, "comment").text.partition("data: ")
    assert head.startswith(": prefill ")


def test_off_header_sends_nothing_before_the_first_token(beating):
    client, handle = beating
    handle.delay_s = 0.55
    response = _post_with(client, "off")
    assert response.status_code == 200
    assert response.text.startswith("data: ") and response.text.endswith("data: [DONE]\n\n")


def test_off_header_keeps_errors_as_status(beating):
    client, handle = beating
    handle.delay_s = 5  # past the pool's request_timeout_s of 2 s
    response = _post_with(client, "off")
    assert response.status_code == 504 and response.json()["error"]["code"] == ErrorCode.TIMEOUT


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions", "/v1/documents/doc-none/ask"])
def test_invalid_heartbeat_header_is_a_400_before_any_engine_call(beating, path):
    client, handle = beating
    body = {"model": IL25, "stream": True, "prompt": LONG_PROMPT,
            "messages": [{"role": "user", "content": "hi"}], "question": "why?"}
    keys = {"/v1/completions": ("model", "stream", "prompt"),
            "/v1/chat/completions": ("model", "stream", "messages"),
            "/v1/documents/doc-none/ask": ("model", "stream", "question")}[path]
    response = client.post(path, headers={"x-stream-heartbeat": "sometimes"}, json={k: body[k] for k in keys})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "x-stream-heartbeat" and error["code"] == ErrorCode.INVALID_HEADER
    assert "comment, blank, off" in error["message"]
    assert handle.streams == []
