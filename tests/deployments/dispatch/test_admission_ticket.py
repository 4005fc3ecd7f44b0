"""Every way out of the request path gives the admission ticket back.

In-process: the real app, request path and admission controller, one fake
pool handle whose engine answers, refuses, fails or stalls as a test asks.
The pool's in-flight depth must be 0 after each answer, and a refused or
failed call must stop its engine stream. (The e2e twins run on the real
stack: tests/e2e/test_reliability.py, test_cancel_prefill.py.)
"""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient
from ray.exceptions import RayActorError

from cluster.config import load_config, profile_path
from deployments.ingress.http import create_app
from deployments.ingress.service import Ingress
from deployments.replica_tag import ReplicaTag

IL25 = "internlm2_5-7b-chat-1m"
POOL = "il25-long"
REPLICA = "pool-il25-long#r1"
LONG_PROMPT = [100 + i % 500 for i in range(5000)]  # in il25-long's band [4097, 10240]


def _engine_refusal():
    """vLLM's validation error, as Ray Serve LLM yields it in place of the first item."""
    from ray.llm._internal.serve.core.configs.openai_api_models import ErrorResponse

    info = ErrorResponse.model_fields["error"].annotation
    return ErrorResponse(error=info(message="the engine refused", type="BadRequestError", code=400))


class FakeStream:
    """The pool handle's stream: the replica tag, then what ``behaviour`` says.

    A fake, because an engine that refuses, dies or stalls at a chosen point
    cannot be provoked in-process; the e2e tests provoke the real ones.
    """

    def __init__(self, behaviour: str, stream: bool, delay_s: float):
        self.behaviour, self.stream, self.delay_s = behaviour, stream, delay_s
        self.cancelled = False
        self._items = self._gen()

    def cancel(self):
        self.cancelled = True

    def __aiter__(self):
        return self

    async def __anext__(self):
        return await self._items.__anext__()

    async def _gen(self):
        yield ReplicaTag(REPLICA)
        await asyncio.sleep(self.delay_s)
        if self.behaviour == "refuse":
            yield _engine_refusal()
        elif self.behaviour == "die":
            raise RayActorError()
        elif self.behaviour == "stall":
            await asyncio.sleep(60)
        if self.stream:
            yield 'data: {"id": "c", "object": "text_completion", "choices": [{"index": 0, "text": "hi"}]}\n\n'
            if self.behaviour == "die_mid_stream":
                raise RuntimeError("engine died")
            yield "data: [DONE]\n\n"
        else:
            yield _completion()


def _completion():
    from ray.llm._internal.serve.core.configs.openai_api_models import CompletionResponse

    return CompletionResponse(id="cmpl-1", model=IL25, choices=[
        {"index": 0, "text": "hi", "finish_reason": "stop", "logprobs": None}],
        usage={"prompt_tokens": 5000, "completion_tokens": 1, "total_tokens": 5001})


class FakeHandle:
    deployment_name = f"pool-{POOL}"

    def __init__(self):
        self.behaviours: list[str] = []  # one per call, then "answer"
        self.delay_s = 0.0
        self.streams: list[FakeStream] = []
        self.completions = self

    def options(self, **_):
        return self

    def remote(self, request, _raw):
        behaviour = self.behaviours.pop(0) if self.behaviours else "answer"
        stream = FakeStream(behaviour, bool(request.stream), self.delay_s)
        self.streams.append(stream)
        return stream


@pytest.fixture(params=["heartbeat", "no-heartbeat"])
def stack(request, demo_models, tmp_path):
    """The app over one fake pool; with and without keep-alive before the first item."""
    beat = "0.2" if request.param == "heartbeat" else "0"
    config = load_config(profile_path("cpu-demo"), [
        # Four times the slowest answer's delay (0.5 s): a busy machine (the
        # suite's other worker runs clusters) still answers in time.
        f"documents.store.data_dir={tmp_path}", f"pools.{POOL}.request_timeout_s=2",
        f"pools.{POOL}.stream_heartbeat_s={beat}", f"pools.{POOL}.nonstream_heartbeat_s={beat}",
    ], env={})
    handle = FakeHandle()
    ingress = Ingress(config.model_dump(mode="json"), {POOL: handle})
    # No lifespan (no `with`): the pool-health poll would ask a real Serve.
    return TestClient(create_app(ingress)), handle, ingress


def _complete(client, stream: bool):
    return client.post("/v1/completions", json={"model": IL25, "prompt": LONG_PROMPT, "max_tokens": 4,
                                                "stream": stream})


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("behaviour, delay_s, status", [
    ("answer", 0.0, 200),
    ("answer", 0.5, 200),  # past the heartbeat: committed first
    ("refuse", 0.0, 400),
    ("die", 0.0, 503),
    ("stall", 0.0, 504),
])
def test_one_call_gives_its_ticket_back(stack, stream, behaviour, delay_s, status):
    client, handle, ingress = stack
    handle.behaviours, handle.delay_s = [behaviour], delay_s
    response = _complete(client, stream)
    committed = ingress.cluster.pool(POOL).stream_heartbeat_s and (delay_s or behaviour == "stall")
    assert response.status_code == (200 if committed else status), response.text
    assert ingress.admission.depth(POOL) == 0
    assert handle.streams[-1].cancelled == (behaviour != "answer")


def test_stream_that_dies_midway_gives_its_ticket_back(stack):
    client, handle, ingress = stack
    handle.behaviours = ["die_mid_stream"]
    response = _complete(client, stream=True)
    events = [block.removeprefix("data: ") for block in response.text.split("\n\n") if block]
    assert response.status_code == 200 and events[-1] == "[DONE]"
    assert "error" in json.loads(events[-2])
    assert ingress.admission.depth(POOL) == 0
    assert handle.streams[-1].cancelled


def _upload(client) -> str:
    response = client.post("/v1/documents", json={"text": "a long document. " * 1200, "model": IL25})
    assert response.status_code == 201, response.text
    assert response.json()["pool"] == {IL25: POOL}
    return response.json()["id"]


@pytest.mark.parametrize("stream", [True, False])
def test_questions_of_one_call_give_their_tickets_back(stack, stream):
    client, handle, ingress = stack
    doc = _upload(client)
    response = client.post(f"/v1/documents/{doc}/ask", json={"questions": ["a?", "b?", "c?"], "stream": stream})
    assert response.status_code == 200, response.text
    assert len(handle.streams) == 3
    assert ingress.admission.depth(POOL) == 0


def test_one_refused_question_stops_the_others_and_gives_every_ticket_back(stack):
    client, handle, ingress = stack
    doc = _upload(client)
    handle.behaviours = ["answer", "refuse", "answer"]
    response = client.post(f"/v1/documents/{doc}/ask", json={"questions": ["a?", "b?", "c?"]})
    assert response.status_code == 400  # before any heartbeat is due
    assert "the engine refused" in response.json()["error"]["message"]
    assert ingress.admission.depth(POOL) == 0
    assert all(s.cancelled for s in handle.streams)


@pytest.mark.parametrize("behaviour", ["answer", "refuse"])
def test_prefill_gives_its_ticket_back_and_names_the_replica(stack, behaviour):
    _, handle, ingress = stack
    handle.behaviours = [behaviour]
    path = ingress.path
    decision = path.route(IL25, len(LONG_PROMPT), 1, _timings())
    request = path.engine_request(IL25, decision, LONG_PROMPT, {"temperature": 0.0, "stream": False})
    seen: list[str] = []

    async def prefill():
        return await path.prefill(decision, request, document_key="doc-1", on_replica=seen.append)

    if behaviour == "answer":
        assert asyncio.run(prefill()) == REPLICA
    else:
        with pytest.raises(Exception, match="the engine refused"):
            asyncio.run(prefill())
    assert seen == [REPLICA]
    assert ingress.admission.depth(POOL) == 0


def _timings():
    from deployments.dispatch.request_path import ServerTimings

    return ServerTimings()
