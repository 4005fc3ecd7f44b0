"""Timing a request over HTTP (our API, or ``vllm serve`` beside it): first token, the ingress's Server-Timing."""

from __future__ import annotations

import time


def stream_completion(client, body: dict) -> dict:
    """POST a streaming completion; time to the first token and the headers."""
    started = time.perf_counter()
    with client.stream("POST", "/v1/completions", json={**body, "stream": True}) as response:
        if response.status_code != 200:
            return {"status": response.status_code, "error": response.read().decode()[:500]}
        ttft = None
        for line in response.iter_lines():
            if ttft is None and line.startswith("data: {") and '"text"' in line:
                ttft = time.perf_counter() - started
        return {
            "status": 200, "ttft_s": ttft, "total_s": time.perf_counter() - started,
            "pool": response.headers.get("x-pool"), "replica": response.headers.get("x-replica"),
            "prompt_tokens": int(response.headers.get("x-prompt-tokens", 0)),
            "server_timing": response.headers.get("server-timing"),
        }


def server_timing_ms(header: str | None) -> dict[str, float]:
    """``{name: milliseconds}`` of a Server-Timing header (``tokenize;dur=1.2, route;dur=0.3``).

    Entries without a duration are left out.
    """
    out = {}
    for part in (header or "").split(","):
        name, _, rest = part.strip().partition(";")
        if "dur=" in rest:
            out[name] = float(rest.split("dur=")[1])
    return out


# Fields every OpenAI-style stream event has; anything else a server adds
# (e.g. per-request timing spans) is recorded.
STANDARD_EVENT_KEYS = frozenset({"id", "object", "created", "model", "choices", "usage", "system_fingerprint",
                                 "service_tier", "prompt_logprobs", "prompt_token_ids", "kv_transfer_params"})


def stream_ttft(client, path: str, body: dict) -> dict:
    """POST a streaming request to ``path``; seconds to the first event carrying a choice, and to the end.

    The same clock for every server compared (our API and ``vllm serve``), for
    completions (``text``) and chat chunks (``delta``) alike: the first
    ``data:`` event with a choice is sent once the engine has the first token.
    Comments and blank lines (our keep-alive heartbeats) carry none and are skipped.
    Timing spans a server returns are kept: the ``server-timing`` and ``x-*``
    headers (ours; ``vllm serve`` sends none) and non-standard event fields.
    """
    import json

    # Encoded before the clock starts: a 400k-token id prompt takes the
    # client tens of milliseconds to serialize, which is no server's time.
    content = json.dumps({**body, "stream": True}).encode()
    started = time.perf_counter()
    with client.stream("POST", path, content=content, headers={"content-type": "application/json"}) as response:
        if response.status_code != 200:
            return {"status": response.status_code, "error": response.read().decode()[:500]}
        ttft, events, extra = None, 0, {}
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            events += 1
            event = json.loads(line[len("data: "):])
            if ttft is None and event.get("choices"):
                ttft = time.perf_counter() - started
            extra.update({k: v for k, v in event.items() if k not in STANDARD_EVENT_KEYS})
        total = time.perf_counter() - started
        spans = {k: v for k, v in response.headers.items() if k == "server-timing" or k.startswith("x-")}
    return {"status": 200, "ttft_s": ttft, "total_s": total, "events": events, "headers": spans,
            "server_timing_ms": server_timing_ms(spans.get("server-timing")),
            **({"event_fields": extra} if extra else {})}
