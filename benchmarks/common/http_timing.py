"""Timing a request over HTTP (our API, or ``vllm serve`` beside it): time to first token, the ingress's Server-Timing."""

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


# Response headers a request's timing spans may come in (ours: the ingress's
# Server-Timing and its x- headers; vllm serve sends none of them).
SPAN_HEADERS = ("server-timing", "x-pool", "x-replica", "x-prompt-tokens", "x-request-id")


def stream_ttft(client, path: str, body: dict) -> dict:
    """POST a streaming request to ``path``; seconds to the first event carrying a choice, and to the end.

    The same clock for every server compared (our API and ``vllm serve``), for
    completions (``text``) and chat chunks (``delta``) alike: the first
    ``data:`` event with a choice is sent once the engine has the first token.
    Comments and blank lines (our keep-alive heartbeats) carry none and are skipped.
    """
    import json

    started = time.perf_counter()
    with client.stream("POST", path, json={**body, "stream": True}) as response:
        if response.status_code != 200:
            return {"status": response.status_code, "error": response.read().decode()[:500]}
        ttft, events = None, 0
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            events += 1
            if ttft is None and json.loads(line[len("data: "):]).get("choices"):
                ttft = time.perf_counter() - started
        total = time.perf_counter() - started
        spans = {k: response.headers[k] for k in SPAN_HEADERS if k in response.headers}
    return {"status": 200, "ttft_s": ttft, "total_s": total, "events": events, "headers": spans,
            "server_timing_ms": server_timing_ms(spans.get("server-timing"))}
