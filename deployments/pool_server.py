"""The pool deployment's server: Ray Serve LLM's LLMServer, plus its own name.

Why a subclass: completions must say which engine replica answered, which
Ray Serve LLM does not. Each completions stream gains one leading replica
tag (the protocol is deployments/replica_tag.py); nothing else changes.
"""

from __future__ import annotations

from typing import Any, AsyncGenerator

from ray import serve
from ray.serve.llm import LLMServer

from deployments.replica_tag import tag_stream


class PoolServer(LLMServer):
    async def completions(self, request, raw_request_info=None) -> AsyncGenerator[Any, None]:
        stream = await super().completions(request, raw_request_info)
        context = serve.get_replica_context()
        return tag_stream(stream, f"{context.deployment}#{context.replica_id.unique_id}")
