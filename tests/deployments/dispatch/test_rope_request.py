"""The rotary length on the engine request: vllm_xargs and cache_salt as vLLM reads them.

The real Ingress of the cpu-demo profile (its long pools in request mode) and
vLLM's own request model; no pool attached, so nothing reaches an engine.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from deployments.dispatch.relay import rope_headers
from deployments.dispatch.request_path import ServerTimings
from deployments.errors import ErrorCode
from deployments.ingress.http import create_app
from deployments.rope import ROPE_SEQ_LEN_XARG

IL25 = "internlm2_5-7b-chat-1m"


def sampling_params(request):
    """What the engine gets: vLLM's own conversion of the request."""
    return request.to_sampling_params(max_tokens=request.max_tokens, default_sampling_params={})


def test_a_long_prompt_carries_its_own_length_and_salt(ingress):
    path = ingress.path
    decision = path.route(IL25, 6000, 8, ServerTimings())
    assert decision.pool.name == "il25-long"
    request = path.engine_request(IL25, decision, [5] * 6000, {"stream": False, "vllm_xargs": {"tenant": "a"},
                                                               "cache_salt": "secret"})
    assert sampling_params(request).extra_args == {"tenant": "a", ROPE_SEQ_LEN_XARG: 6000}
    assert request.cache_salt == "longctx-rope-6000:secret"
    assert rope_headers([decision]) == {"x-rope-seq-len": "6000", "x-rope-base-ratio": "1"}


def test_a_prompt_max_tokens_pushed_into_the_long_pool_gets_the_stock_base(ingress):
    path = ingress.path
    decision = path.route(IL25, 4000, 500, ServerTimings())
    assert decision.pool.name == "il25-long"
    request = path.engine_request(IL25, decision, [5] * 4000, {"stream": False})
    assert sampling_params(request).extra_args == {ROPE_SEQ_LEN_XARG: 4096}
    assert request.cache_salt == "longctx-rope-4096"


def test_a_short_pool_request_is_untouched(ingress):
    path = ingress.path
    decision = path.route(IL25, 100, 8, ServerTimings())
    request = path.engine_request(IL25, decision, [5] * 100, {"stream": False})
    assert decision.rope is None and request.cache_salt is None and not sampling_params(request).extra_args
    assert rope_headers([decision]) == {}


def test_clients_cannot_pick_the_base(ingress):
    client = TestClient(create_app(ingress))
    for route, body in (("/v1/completions", {"prompt": "hi"}),
                        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})):
        response = client.post(route, json={"model": IL25, **body, "vllm_xargs": {ROPE_SEQ_LEN_XARG: 4096}})
        assert response.status_code == ErrorCode.INVALID_REQUEST.status, response.text
        error = response.json()["error"]
        assert error["code"] == ErrorCode.INVALID_REQUEST and error["param"].startswith("vllm_xargs")
        assert ROPE_SEQ_LEN_XARG in error["message"]
