"""The pool deployment's server: Ray Serve LLM's LLMServer, plus its own name.

Why a subclass: clients and the affinity benchmark need to know which engine
replica answered (the `x-replica` header), and neither Ray Serve LLM's
responses nor Serve's handle report it. Completions gain one leading
``ReplicaTag`` item, which the ingress strips; nothing else changes.
"""

from __future__ import annotations

from typing import Any, AsyncGenerator

from ray import serve
from ray.serve.llm import LLMServer

from deployments.replica_tag import ReplicaTag


class PoolServer(LLMServer):
    async def completions(self, request, raw_request_info=None) -> AsyncGenerator[Any, None]:
        stream = await super().completions(request, raw_request_info)
        context = serve.get_replica_context()
        tag = ReplicaTag(f"{context.deployment}#{context.replica_id.unique_id}")

        async def tagged():
            yield tag
            async for item in stream:
                yield item

        return tagged()
