"""Completion-shaped engine output -> OpenAI chat shape.

Chat requests reach the engine as token-id completions (the ingress already
applied the chat template; handing vLLM the messages again would re-render
and re-tokenize a possibly 1M-token prompt). vLLM therefore answers in the
completions shape, and this module rewrites it into the chat shape the client
asked for. Only fields that exist in both shapes are carried over.
"""

from __future__ import annotations

import json
from typing import Any, Iterable


def _chat_logprobs(logprobs: dict | None) -> dict | None:
    if not logprobs:
        return None
    tokens = logprobs.get("tokens") or []
    token_logprobs = logprobs.get("token_logprobs") or []
    top = logprobs.get("top_logprobs") or [None] * len(tokens)
    content = []
    for token, logprob, alternatives in zip(tokens, token_logprobs, top):
        content.append(
            {
                "token": token,
                "logprob": logprob,
                "bytes": list(token.encode("utf-8")),
                "top_logprobs": [
                    {"token": t, "logprob": lp, "bytes": list(t.encode("utf-8"))}
                    for t, lp in (alternatives or {}).items()
                ],
            }
        )
    return {"content": content}


def chat_response(completion: dict[str, Any]) -> dict[str, Any]:
    choices = []
    for choice in completion.get("choices", []):
        out = {
            "index": choice.get("index", 0),
            "message": {"role": "assistant", "content": choice.get("text", "")},
            "logprobs": _chat_logprobs(choice.get("logprobs")),
            "finish_reason": choice.get("finish_reason"),
        }
        if choice.get("prompt_logprobs") is not None:
            out["prompt_logprobs"] = choice["prompt_logprobs"]
        choices.append(out)
    response = {
        "id": "chat" + completion.get("id", ""),
        "object": "chat.completion",
        "created": completion.get("created"),
        "model": completion.get("model"),
        "choices": choices,
        "usage": completion.get("usage"),
    }
    if completion.get("prompt_logprobs") is not None:
        response["prompt_logprobs"] = completion["prompt_logprobs"]
    return response


class ChatStreamRewriter:
    """Rewrites a completion SSE stream into chat.completion.chunk events.

    Stateful per stream: the first delta of every choice carries the role.
    """

    def __init__(self) -> None:
        self._started: set[int] = set()

    def rewrite(self, sse_text: str) -> str:
        out = []
        for event in sse_text.split("\n\n"):
            event = event.strip()
            if not event:
                continue
            if not event.startswith("data:"):
                continue
            payload = event[len("data:"):].strip()
            if payload == "[DONE]":
                out.append("data: [DONE]\n\n")
                continue
            chunk = json.loads(payload)
            if "error" in chunk:
                out.append(f"data: {payload}\n\n")
                continue
            out.append(f"data: {json.dumps(self._chunk(chunk))}\n\n")
        return "".join(out)

    def _chunk(self, chunk: dict[str, Any]) -> dict[str, Any]:
        choices = []
        for choice in chunk.get("choices", []):
            index = choice.get("index", 0)
            delta: dict[str, Any] = {"content": choice.get("text", "")}
            if index not in self._started:
                self._started.add(index)
                delta = {"role": "assistant", **delta}
            choices.append(
                {
                    "index": index,
                    "delta": delta,
                    "logprobs": _chat_logprobs(choice.get("logprobs")),
                    "finish_reason": choice.get("finish_reason"),
                }
            )
        out = {
            "id": "chat" + chunk.get("id", ""),
            "object": "chat.completion.chunk",
            "created": chunk.get("created"),
            "model": chunk.get("model"),
            "choices": choices,
        }
        if chunk.get("usage") is not None:
            out["usage"] = chunk["usage"]
        return out


def sse_texts(item: Any) -> Iterable[str]:
    """Flatten what an LLMServer stream yields (a string or a batch of them)."""
    if isinstance(item, list):
        for part in item:
            yield from sse_texts(part)
    elif isinstance(item, str):
        yield item
    elif hasattr(item, "model_dump_json"):
        yield f"data: {item.model_dump_json()}\n\n"
    else:
        raise TypeError(f"unexpected stream item {type(item).__name__}")


def merge_choices(responses: list[dict[str, Any]]) -> dict[str, Any]:
    """Several one-choice chat completions as one: choice i answers prompt i."""
    merged = dict(responses[0])
    merged["choices"] = []
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for index, response in enumerate(responses):
        for choice in response.get("choices", []):
            merged["choices"].append({**choice, "index": index})
        for key in usage:
            usage[key] += (response.get("usage") or {}).get(key) or 0
    merged["usage"] = usage
    return merged


def reindex_choices(sse_text: str, index: int) -> str:
    """Set the choice index of every chat chunk in an SSE text (for merged streams)."""
    out = []
    for event in sse_text.split("\n\n"):
        event = event.strip()
        if not event.startswith("data:"):
            continue
        payload = event[len("data:"):].strip()
        if payload == "[DONE]":
            continue
        chunk = json.loads(payload)
        for choice in chunk.get("choices") or []:
            choice["index"] = index
        out.append(f"data: {json.dumps(chunk)}\n\n")
    return "".join(out)
