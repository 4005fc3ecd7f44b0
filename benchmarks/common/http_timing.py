"""Timing a request through our HTTP API: a streamed completion's first token, the ingress's Server-Timing."""

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
