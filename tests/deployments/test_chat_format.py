"""Completion-shaped engine output rewritten into the chat shape."""

import json

from deployments.chat_format import ChatStreamRewriter, chat_response, sse_texts

COMPLETION = {
    "id": "cmpl-1", "object": "text_completion", "created": 5, "model": "m",
    "choices": [{"index": 0, "text": "hi", "finish_reason": "length",
                 "logprobs": {"tokens": ["h", "i"], "token_logprobs": [-0.5, -1.0],
                              "top_logprobs": [{"h": -0.5}, {"i": -1.0, "j": -2.0}]}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def test_non_streaming_response_becomes_chat_completion():
    chat = chat_response(COMPLETION)
    assert chat["object"] == "chat.completion" and chat["id"] == "chatcmpl-1"
    assert chat["choices"][0]["message"] == {"role": "assistant", "content": "hi"}
    content = chat["choices"][0]["logprobs"]["content"]
    assert [c["token"] for c in content] == ["h", "i"]
    assert content[1]["top_logprobs"][1] == {"token": "j", "logprob": -2.0, "bytes": [106]}
    assert chat["usage"] == COMPLETION["usage"]


def test_stream_gets_role_once_and_keeps_done_and_errors():
    rewriter = ChatStreamRewriter()
    chunk = {"id": "cmpl-2", "created": 1, "model": "m", "choices": [{"index": 0, "text": "a"}]}
    first = rewriter.rewrite(f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(chunk)}\n\n")
    events = [json.loads(e[len("data: "):]) for e in first.strip().split("\n\n")]
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": "a"}
    assert events[1]["choices"][0]["delta"] == {"content": "a"}
    assert events[0]["object"] == "chat.completion.chunk"
    assert rewriter.rewrite("data: [DONE]\n\n") == "data: [DONE]\n\n"
    error = 'data: {"error": {"message": "x"}}\n\n'
    assert rewriter.rewrite(error) == error


def test_batched_stream_items_are_flattened():
    assert list(sse_texts(["data: 1\n\n", ["data: 2\n\n"]])) == ["data: 1\n\n", "data: 2\n\n"]
