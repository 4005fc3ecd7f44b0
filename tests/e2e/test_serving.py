"""The serving core on the real stack: OpenAI API, exact token routing, errors."""

from __future__ import annotations

import concurrent.futures
import json

import openai
import pytest

from deployments.tokens import PromptTokenizer
from deployments.errors import ErrorCode

pytestmark = pytest.mark.e2e

IL25 = "internlm2_5-7b-chat-1m"
IL3 = "internlm3-8b-instruct"


@pytest.fixture(scope="module")
def il25_tokenizer(cluster) -> PromptTokenizer:
    return PromptTokenizer(IL25, cluster.config.models[IL25])


def _filler(tokenizer: PromptTokenizer, prompt_tokens: int) -> list[dict]:
    """A user message whose chat-templated prompt is exactly prompt_tokens long."""
    base = len(tokenizer.chat_ids([{"role": "user", "content": ""}]))
    words = ["alpha"] * (prompt_tokens - base)
    messages = [{"role": "user", "content": " ".join(words)}]
    # Word merges can shift the count by a few tokens: trim or pad to exact.
    for _ in range(50):
        n = len(tokenizer.chat_ids(messages))
        if n == prompt_tokens:
            return messages
        words = words[: -1] if n > prompt_tokens else words + ["alpha"]
        messages = [{"role": "user", "content": " ".join(words)}]
    raise AssertionError("could not build a prompt of the exact length")


def test_models_lists_both_architectures(openai_client):
    ids = {m.id for m in openai_client.models.list().data}
    assert ids == {IL25, IL3}


def test_pools_view_describes_every_pool(http, cluster):
    data = http.get("/v1/pools").json()["data"]
    assert [p["name"] for p in data] == [p.name for p in cluster.config.pools]
    for row in data:
        pool = cluster.config.pool(row["name"])
        model = cluster.config.models[row["model"]]
        assert (row["min_tokens"], row["max_tokens"]) == tuple(pool.band)
        assert row["tensor_parallel_size"] == pool.engine.tensor_parallel_size
        assert row["max_model_len"] == pool.engine.max_model_len
        assert row["native_context"] == model.native_context
        assert row["model_path"] == model.path
        assert row["replicas"]["min"] == pool.replicas.min
    long_pool = cluster.config.pools_of(IL25)[-1]
    assert long_pool.max_tokens > cluster.config.models[IL25].native_context


def test_healthz(http):
    assert http.get("/healthz").json() == {"status": "ok"}


def test_chat_short_prompt_goes_to_short_pool(openai_client, cluster):
    raw = openai_client.chat.completions.with_raw_response.create(
        model=IL25, messages=[{"role": "user", "content": "Hello there"}], max_tokens=8
    )
    completion = raw.parse()
    assert raw.headers["x-pool"] == cluster.pools_of(IL25)[0]
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content
    assert 1 <= completion.usage.completion_tokens <= 8
    # The engine counted the same prompt the ingress routed: tokenized once.
    assert completion.usage.prompt_tokens == int(raw.headers["x-prompt-tokens"])


def test_chat_streaming_with_usage(openai_client):
    stream = openai_client.chat.completions.create(
        model=IL3,
        messages=[{"role": "user", "content": "Count to three"}],
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert "".join(d.content or "" for d in deltas)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 6


def test_completions_plain_and_streaming(openai_client):
    raw = openai_client.completions.with_raw_response.create(model=IL25, prompt="def main():", max_tokens=5)
    completion = raw.parse()
    assert completion.choices[0].text and completion.usage.completion_tokens <= 5
    assert raw.headers["x-pool"]
    pieces = [c.choices[0].text for c in openai_client.completions.create(
        model=IL25, prompt="import os", max_tokens=5, stream=True) if c.choices]
    assert pieces and "".join(pieces)


def test_completion_from_token_ids(openai_client, il25_tokenizer):
    ids = il25_tokenizer.text_ids("class Config:")
    completion = openai_client.completions.create(model=IL25, prompt=ids, max_tokens=3)
    assert completion.usage.prompt_tokens == len(ids)


def test_band_boundary_is_exact(openai_client, cluster, il25_tokenizer):
    """prompt + max_tokens == band max stays in the short pool; one more token moves it."""
    short, long_ = cluster.config.pools_of(IL25)[:2]
    prompt_tokens = short.max_tokens - 4
    messages = _filler(il25_tokenizer, prompt_tokens)
    at_edge = openai_client.chat.completions.with_raw_response.create(
        model=IL25, messages=messages, max_tokens=4
    )
    assert at_edge.headers["x-pool"] == short.name
    past_edge = openai_client.chat.completions.with_raw_response.create(
        model=IL25, messages=messages, max_tokens=5
    )
    assert past_edge.headers["x-pool"] == long_.name
    assert past_edge.parse().usage.prompt_tokens == prompt_tokens


def test_prompt_past_native_window_goes_to_long_pool(openai_client, cluster, il25_tokenizer):
    native = cluster.config.models[IL25].native_context
    messages = _filler(il25_tokenizer, native + 1000)
    raw = openai_client.chat.completions.with_raw_response.create(
        model=IL25, messages=messages, max_tokens=4
    )
    assert raw.headers["x-pool"] == cluster.pools_of(IL25)[-1]
    assert raw.parse().usage.prompt_tokens == native + 1000


def test_over_every_band_is_413_with_count_and_limit(http, cluster, il25_tokenizer):
    limit = cluster.config.pools_of(IL25)[-1].max_tokens
    messages = _filler(il25_tokenizer, limit - 10)
    response = http.post("/v1/chat/completions", json={"model": IL25, "messages": messages, "max_tokens": 11})
    assert response.status_code == 413
    assert "x-pool" not in response.headers  # refused before any pool was chosen
    error = response.json()["error"]
    assert error["code"] == ErrorCode.CONTEXT_LENGTH_EXCEEDED and error["param"] == "messages"
    assert f"{limit + 1} tokens" in error["message"] and f"limit of {limit}" in error["message"]


def test_completion_over_every_band_names_the_prompt(http, cluster):
    limit = cluster.config.pools_of(IL25)[-1].max_tokens
    response = http.post("/v1/completions", json={"model": IL25, "prompt": [5] * limit, "max_tokens": 1})
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == ErrorCode.CONTEXT_LENGTH_EXCEEDED and error["param"] == "prompt"
    assert f"{limit + 1} tokens ({limit} prompt + 1 max_tokens)" in error["message"]


def test_413_through_openai_client(openai_client, cluster):
    limit = cluster.config.pools_of(IL3)[-1].max_tokens
    with pytest.raises(openai.APIStatusError) as info:
        openai_client.chat.completions.create(
            model=IL3, messages=[{"role": "user", "content": "hi"}], max_tokens=limit
        )
    assert info.value.status_code == 413


def test_unknown_model_is_404_listing_models(openai_client):
    with pytest.raises(openai.NotFoundError) as info:
        openai_client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "x"}])
    message = info.value.body["message"]
    assert IL25 in message and IL3 in message


@pytest.mark.parametrize(
    "body, status, needle",
    [
        (b"{not json", 400, "not valid JSON"),
        (json.dumps({"model": IL25}).encode(), 422, "messages"),
        (json.dumps({"model": IL25, "messages": [{"role": "user", "content": "x"}], "temperature": 9}).encode(),
         422, "temperature"),
        (json.dumps({"model": IL25, "messages": "hello"}).encode(), 422, "messages"),
        (json.dumps({"model": IL25, "messages": [{"role": "wizard", "content": "x"}]}).encode(), 422, "role"),
        (json.dumps({"model": IL25, "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}).encode(),
         422, "max_tokens"),
    ],
)
def test_malformed_bodies_are_4xx_with_message(http, body, status, needle):
    response = http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert needle in error["message"]
    assert error["type"] == "invalid_request_error"


def test_out_of_vocabulary_token_id_is_400(http):
    response = http.post("/v1/completions", json={"model": IL25, "prompt": [1, 10**7], "max_tokens": 1})
    assert response.status_code == 400
    assert "outside the vocabulary" in response.json()["error"]["message"]


def test_unknown_route_is_json_404(http):
    response = http.get("/v1/does-not-exist")
    assert response.status_code == 404
    assert response.json()["error"]["message"]


def test_thinking_mode_adds_the_configured_system_prompt(openai_client, http, cluster):
    messages = [{"role": "user", "content": "What is 2 + 2?"}]
    plain = openai_client.chat.completions.create(model=IL3, messages=messages, max_tokens=2)
    thinking = openai_client.chat.completions.create(
        model=IL3, messages=messages, max_tokens=2, extra_body={"thinking": True}
    )
    prompt = cluster.config.models[IL3].thinking_system_prompt()
    tokenizer = PromptTokenizer(IL3, cluster.config.models[IL3])
    expected = len(tokenizer.chat_ids([{"role": "system", "content": prompt}, *messages]))
    assert thinking.usage.prompt_tokens == expected > plain.usage.prompt_tokens
    refused = http.post("/v1/chat/completions",
                        json={"model": IL25, "messages": messages, "thinking": True})
    error = refused.json()["error"]
    assert refused.status_code == 400 and error["code"] == ErrorCode.THINKING_NOT_CONFIGURED and error["param"] == "thinking"
    assert f"models.{IL25}.thinking_system_prompt_file" in error["message"]


def test_bad_requests_do_not_disturb_good_ones(openai_client, http):
    def good():
        return openai_client.chat.completions.create(
            model=IL25, messages=[{"role": "user", "content": "ping"}], max_tokens=4
        ).choices[0].finish_reason

    def bad():
        return http.post("/v1/chat/completions", content=b"[", headers={"content-type": "application/json"}).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        goods = [pool.submit(good) for _ in range(4)]
        bads = [pool.submit(bad) for _ in range(8)]
        assert all(f.result() in ("length", "stop") for f in goods)
        assert all(f.result() == 400 for f in bads)
