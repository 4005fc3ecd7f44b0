"""The engine request of a prompt: every field validated by vLLM's model, the ids passed through.

The real Ingress of the cpu-demo profile and vLLM's own CompletionRequest; no
pool attached, so nothing reaches an engine.
"""

from __future__ import annotations

import pytest

from deployments.errors import APIError, ErrorCode

IL25 = "internlm2_5-7b-chat-1m"


def test_the_prompt_ids_reach_the_engine_request_as_counted(ingress):
    path = ingress.path
    ids = list(range(3, 3003))
    decision = path.bands.choose(IL25, len(ids), 16)
    request = path.engine_request(IL25, decision, ids, {"stream": False, "temperature": 0.5})
    # The ingress's list itself: not copied, not walked again.
    assert request.prompt is ids
    params = request.to_sampling_params(max_tokens=request.max_tokens, default_sampling_params={})
    assert (params.temperature, params.max_tokens) == (0.5, decision.max_tokens)


def test_the_engine_model_still_refuses_what_it_refused(ingress):
    path = ingress.path
    decision = path.bands.choose(IL25, 10, 16)
    with pytest.raises(APIError) as refused:
        # stream_options without stream: vLLM's own model-level check.
        path.engine_request(IL25, decision, [5] * 10, {"stream": False, "stream_options": {"include_usage": True}})
    assert refused.value.code is ErrorCode.ENGINE_REJECTED
