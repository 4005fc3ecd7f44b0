"""The pool deployment's server: Ray Serve LLM's LLMServer, plus its own name.

Why a subclass: completions must say which engine replica answered, which
Ray Serve LLM does not. Each completions stream gains one leading replica
tag (the protocol is deployments/replica_tag.py), and its first item the
replica's timing of it: ``server``, from this method's call to the first item
out of Ray Serve LLM's stream, and vLLM's own spans (deployments/engine_spans.py).
And GPU engines on one node start one at a time (deployments/engine_start.py).
Nothing else changes.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any, AsyncGenerator

from ray import serve

# This location exists in Ray 2.58-2.60; `ray.serve.llm.LLMServer` is a
# deprecated shim in 2.58.
from ray.serve.llm.deployment import LLMServer

from deployments.engine_spans import vllm_spans
from deployments.engine_start import engine_start_lock, starts_one_at_a_time
from deployments.replica_tag import tag_stream


class PoolServer(LLMServer):
    async def __init__(self, llm_config, **kwargs):
        # One GPU engine start at a time per node (deployments/engine_start.py).
        bundles = (llm_config.placement_group_config or {}).get("bundles", [])
        async with engine_start_lock() if starts_one_at_a_time(bundles) else nullcontext():
            await super().__init__(llm_config, **kwargs)

    async def completions(self, request, raw_request_info=None) -> AsyncGenerator[Any, None]:
        received = time.perf_counter()
        stream = await super().completions(request, raw_request_info)
        context = serve.get_replica_context()
        # Ray Serve LLM stamped the request's id (its Serve request id, or the ingress's own).
        request_id = str(getattr(request, "request_id", "") or "")
        engine_client = getattr(self.engine, "_engine_client", None)

        def spans() -> tuple[tuple[str, float], ...]:
            return (("server", time.perf_counter() - received), *vllm_spans(engine_client, request_id))

        return tag_stream(stream, f"{context.deployment}#{context.replica_id.unique_id}", spans)
