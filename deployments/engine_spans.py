"""vLLM's own timing of one request, read where the engine keeps it.

vLLM's engine front end (AsyncLLM's output processor) keeps, per live
request, the stats its metrics are made of (``RequestStateStats``): the
front end's arrival time and first-token latency, and the engine core's
queued, scheduled and first-token timestamps (one monotonic clock per node,
the replica's too). Neither vLLM's OpenAI layer nor Ray Serve LLM returns
them with an answer, and Ray Serve LLM installs its own stat loggers only,
so the pool replica reads them from the output processor when the first
item of a request leaves the engine, by the request's id: a dictionary
lookup, no patching. They exist only while the request runs: a request
that is finished by its first item (a non-streaming answer, ``max_tokens:
1``) has none left to read, and the spans say only what the replica timed.

Spans (seconds):

  vllm_ttft     the front end's arrival to its first token (input
                processing, the hop to the engine core, queue, steps)
  vllm_queue    the engine core's queue: queued -> first scheduled (waits
                for a slot and the prefix-cache lookup)
  vllm_prefill  first scheduled -> first token: the engine's steps
"""

from __future__ import annotations

from typing import Any


def vllm_request_id(request_id: str) -> str:
    """The id vLLM's OpenAI layer gives prompt 0 of a completion request ``request_id``
    (``cmpl-<id>-0``; the request carries no X-Request-Id header to override it)."""
    return f"cmpl-{request_id}-0"


def vllm_spans(engine_client: Any, request_id: str) -> tuple[tuple[str, float], ...]:
    """vLLM's spans of the live request ``request_id`` (the completion's own id); () if unknown."""
    try:
        processor = engine_client.output_processor
        external = vllm_request_id(request_id)
        internal = (processor.external_req_ids.get(external) or [external])[0]
        state = processor.request_states.get(internal)
        stats = getattr(state, "stats", None)
    except (AttributeError, IndexError, TypeError):
        # Another vLLM layout: no engine spans rather than a failed request.
        return ()
    if stats is None or not stats.first_token_latency:
        return ()
    spans = [("vllm_ttft", stats.first_token_latency)]
    if stats.queued_ts and stats.scheduled_ts:
        spans.append(("vllm_queue", stats.scheduled_ts - stats.queued_ts))
    if stats.scheduled_ts and stats.first_token_ts:
        spans.append(("vllm_prefill", stats.first_token_ts - stats.scheduled_ts))
    return tuple(spans)
