"""Client mistakes the ingress admitted before and then failed as a 500: each
is now a 4xx with an OpenAI-style body naming the field and the rule.

The real app and Ingress (real tokenizers, band policy, document store); no
pool is attached, so a refusal here is made before any engine is involved.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from cluster.config import load_config, profile_path
from deployments.errors import APIError, ErrorCode
from deployments.ingress.http import create_app
from deployments.ingress.service import Ingress
from deployments.routing.bands import BandPolicy

IL25 = "internlm2_5-7b-chat-1m"
IL3 = "internlm3-8b-instruct"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def ingress(demo_models, tmp_path_factory):
    config = load_config(profile_path("cpu-demo"), [f"documents.store.data_dir={tmp_path_factory.mktemp('docs')}"],
                         env={})
    return Ingress(config.model_dump(mode="json"), pool_handles={})


@pytest.fixture(scope="module")
def client(ingress):
    return TestClient(create_app(ingress))


@pytest.fixture(scope="module")
def document(client):
    response = client.post("/v1/documents", json={"text": "A short contract.", "model": IL25})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def refused(response, code: ErrorCode, param: str | None = None) -> dict:
    """The response's error, checked against the code's status and the body's shape."""
    assert response.status_code == code.status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["type"]
    assert error["param"] == param, error
    return error


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", {"model": IL25, "messages": MESSAGES}),
    ("/v1/completions", {"model": IL25, "prompt": "hi"}),
])
@pytest.mark.parametrize("stream_options", [{}, {"include_usage": True}])
def test_stream_options_without_stream(client, path, body, stream_options):
    for stream in ({}, {"stream": False}):
        error = refused(client.post(path, json={**body, **stream, "stream_options": stream_options}),
                        ErrorCode.INVALID_PARAMETER_COMBINATION, "stream_options")
        assert "only allowed with stream: true" in error["message"]


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", {"model": IL25, "messages": MESSAGES}),
    ("/v1/completions", {"model": IL25, "prompt": "hi"}),
])
@pytest.mark.parametrize("prompt_logprobs", [0, 1])
def test_prompt_logprobs_with_stream(client, path, body, prompt_logprobs):
    error = refused(client.post(path, json={**body, "stream": True, "prompt_logprobs": prompt_logprobs}),
                    ErrorCode.INVALID_PARAMETER_COMBINATION, "prompt_logprobs")
    assert "not available with stream: true" in error["message"]


def test_top_logprobs_without_logprobs(client):
    refused(client.post("/v1/chat/completions", json={"model": IL25, "messages": MESSAGES, "top_logprobs": 2}),
            ErrorCode.INVALID_PARAMETER_COMBINATION, "top_logprobs")


@pytest.mark.parametrize("ids", [[-1, 5, 6], [5, -(2**40)], [5, 10**9]])
def test_token_ids_outside_the_vocabulary(client, ingress, ids):
    error = refused(client.post("/v1/completions", json={"model": IL25, "prompt": ids}),
                    ErrorCode.INVALID_TOKEN_ID, "prompt")
    bad = next(i for i in ids if not 0 <= i < ingress.path.tokenizers[IL25].vocab_size)
    assert f"prompt token id {bad} is outside the vocabulary" in error["message"]


def test_ask_refuses_stream_options_without_stream(client, document):
    refused(client.post(f"/v1/documents/{document}/ask", json={"question": "Who?", "stream_options": {}}),
            ErrorCode.INVALID_PARAMETER_COMBINATION, "stream_options")


@pytest.mark.parametrize("seed", [2**63, -(2**63) - 1, 10**30])
def test_ask_bounds_the_seed_to_int64(client, document, seed):
    error = refused(client.post(f"/v1/documents/{document}/ask", json={"question": "Who?", "seed": seed}),
                    ErrorCode.INVALID_REQUEST, "seed")
    assert "seed" in error["message"]


def test_chat_bounds_the_seed_the_same_way(client):
    refused(client.post("/v1/chat/completions", json={"model": IL25, "messages": MESSAGES, "seed": 2**63}),
            ErrorCode.INVALID_REQUEST, "seed")


def test_thinking_without_a_configured_prompt_names_the_setting(client):
    error = refused(client.post("/v1/chat/completions", json={"model": IL25, "messages": MESSAGES, "thinking": True}),
                    ErrorCode.THINKING_NOT_CONFIGURED, "thinking")
    assert f"models.{IL25}.thinking_system_prompt_file" in error["message"]


def test_models_say_which_have_thinking(client):
    thinking = {m["id"]: m["thinking"] for m in client.get("/v1/models").json()["data"]}
    assert thinking == {IL25: False, IL3: True}


# --- document uploads: the statuses README promises, not FastAPI's 422 ---

def test_upload_of_malformed_json_is_400(client):
    for body in (b"{", b'{"text": "a",}', b"not json"):
        refused(client.post("/v1/documents", content=body, headers={"content-type": "application/json"}),
                ErrorCode.INVALID_BODY)


def test_upload_that_is_not_utf8_is_415(client):
    error = refused(client.post("/v1/documents", content='{"text": "Überlege"}'.encode("latin-1"),
                                headers={"content-type": "application/json"}), ErrorCode.INVALID_ENCODING)
    assert "not valid UTF-8" in error["message"]


def test_upload_of_another_content_type_is_415(client):
    error = refused(client.post("/v1/documents", content=b"text", headers={"content-type": "text/plain"}),
                    ErrorCode.UNSUPPORTED_MEDIA_TYPE)
    assert "'text/plain'" in error["message"]


def test_upload_of_the_wrong_shape_is_422(client):
    refused(client.post("/v1/documents", json={"text": 5}), ErrorCode.INVALID_REQUEST, "text")
    refused(client.post("/v1/documents", json={"text": "a", "colour": 1}), ErrorCode.INVALID_REQUEST, "colour")
    refused(client.post("/v1/documents", json={"text": ""}), ErrorCode.INVALID_DOCUMENT)
    refused(client.post("/v1/documents", files={"metadata": (None, "[1]")}), ErrorCode.INVALID_REQUEST, "file")
    refused(client.post("/v1/documents", files={"file": ("a.txt", b"a"), "warm": (None, "")}),
            ErrorCode.INVALID_REQUEST, "warm")
    refused(client.post("/v1/documents", files={"file": ("a.txt", b"a"), "metadata": (None, "[1]")}),
            ErrorCode.INVALID_REQUEST, "metadata")


def test_routes_and_methods(client):
    refused(client.get("/v1/nothing"), ErrorCode.NOT_FOUND)
    refused(client.put("/v1/models"), ErrorCode.METHOD_NOT_ALLOWED)
    refused(client.get("/v1/documents", params={"after": "not-a-cursor"}), ErrorCode.INVALID_CURSOR)


def test_the_engine_request_model_refusing_is_a_400_not_a_500(ingress):
    # vLLM's own CompletionRequest, built at the ingress: a rule it has and the
    # ingress's schemas lack must not escape as a 500.
    path = ingress.path
    decision = BandPolicy(path.cluster).choose(IL25, 3, 4)
    with pytest.raises(APIError) as refusal:
        path.engine_request(IL25, decision, [5, 6, 7], {"stream": False, "stream_options": {"include_usage": True}})
    assert refusal.value.code == ErrorCode.ENGINE_REJECTED and "Stream options" in refusal.value.message


def test_several_choices_need_sampling(client):
    refused(client.post("/v1/chat/completions", json={"model": IL25, "messages": MESSAGES, "n": 2, "temperature": 0}),
            ErrorCode.INVALID_PARAMETER_COMBINATION, "n")


@pytest.mark.parametrize("stop", ["", ["a", ""]])
def test_empty_stop_strings(client, document, stop):
    refused(client.post("/v1/completions", json={"model": IL25, "prompt": "hi", "stop": stop}),
            ErrorCode.INVALID_REQUEST, "stop")
    response = client.post(f"/v1/documents/{document}/ask", json={"question": "Who?", "stop": stop})
    assert response.status_code == 422 and response.json()["error"]["param"].startswith("stop")


@pytest.mark.parametrize("body, budget", [({"max_tokens": 4}, 4), ({}, 64)])
def test_min_tokens_over_the_budget(client, body, budget):
    # Without max_tokens the budget is the model's default_max_tokens (64 in the demo).
    error = refused(client.post("/v1/completions", json={"model": IL25, "prompt": "hi", "min_tokens": 65, **body}),
                    ErrorCode.INVALID_PARAMETER_COMBINATION, "min_tokens")
    assert f"max_tokens of {budget}" in error["message"]


def test_the_openapi_document_describes_every_answer(client):
    document = client.get("/openapi.json").json()
    routes = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    assert {("POST", "/v1/chat/completions"), ("POST", "/v1/completions"), ("GET", "/v1/models"),
            ("POST", "/v1/documents"), ("POST", "/v1/documents/{doc_id}/ask")} <= routes
    upload = document["paths"]["/v1/documents"]["post"]
    assert {"application/json", "multipart/form-data"} <= set(upload["requestBody"]["content"])
    chat = document["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert {"application/json", "text/event-stream"} <= set(chat["200"]["content"])
    documented = set()
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                if int(status) >= 400:
                    error = answer["content"]["application/json"]["schema"]["properties"]["error"]
                    codes = error["properties"]["code"]["enum"]
                    assert codes and all(ErrorCode(c).status == int(status) for c in codes), (method, path, status)
                    documented.update(codes)
    # Every code but the ingress's own fault is documented on some route.
    assert documented == {c.value for c in ErrorCode} - {ErrorCode.INTERNAL_ERROR}
    # FastAPI's own validation-error body (`detail`) is never documented: the API answers its own.
    assert "HTTPValidationError" not in document["components"]["schemas"]


@pytest.mark.parametrize("path, body, param", [
    ("/v1/chat/completions", {"model": IL25, "messages": [{"role": "user", "content": "a\ud800"}]}, "messages.0.content"),
    ("/v1/chat/completions", {"model": IL25, "messages": [{"role": "user", "content": [{"type": "text", "text": "\udfff"}]}]},
     "messages.0.content.0.text"),
    ("/v1/completions", {"model": IL25, "prompt": "\ud800"}, "prompt"),
    ("/v1/completions", {"model": IL25, "prompt": "hi", "stop": ["\ud800"]}, "stop.0"),
])
def test_lone_surrogates_are_refused(client, path, body, param):
    # json.dumps escapes them (\\ud800), which JSON allows and Python's parser accepts;
    # the tokenizer failed on them (a 500).
    response = client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    error = refused(response, ErrorCode.INVALID_ENCODING, param)
    assert "lone surrogate" in error["message"]


def test_lone_surrogates_in_a_question(client, document):
    response = client.post(f"/v1/documents/{document}/ask", content=json.dumps({"question": "\ud800?"}),
                           headers={"content-type": "application/json"})
    refused(response, ErrorCode.INVALID_ENCODING, "question")


def test_multipart_text_may_be_a_plain_field(client):
    response = client.post("/v1/documents", files={"file": (None, "A contract."), "model": (None, IL25)})
    assert response.status_code == 201 and response.json()["bytes"] == len("A contract.")
