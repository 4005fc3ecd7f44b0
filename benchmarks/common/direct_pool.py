"""Completions straight to a pool deployment's Serve handle: the engine-only baseline of an overhead figure."""

from __future__ import annotations

import time


class DirectPool:
    """Completions straight to a pool deployment's Serve handle, from the driver: the engine-only baseline.

    The handle lives on one event loop of our own, created with it: with
    ``RAY_SERVE_THROUGHPUT_OPTIMIZED`` Serve runs a handle's router on the
    loop that created it (not a separate one), so a handle made outside a loop
    and driven by ``asyncio.run`` per call would fail; one loop also keeps the
    loop's set-up out of the timed calls.
    """

    def __init__(self, deployment: str, app_name: str, model: str):
        import asyncio

        self.model = model
        self._loop = asyncio.new_event_loop()

        async def make():
            from ray import serve

            return serve.get_deployment_handle(deployment, app_name=app_name).options(stream=True)

        self._handle = self._loop.run_until_complete(make())

    def complete(self, ids: list[int], max_tokens: int = 1) -> float:
        """One request; seconds until its stream ended."""
        from ray.llm._internal.serve.core.configs.openai_api_models import CompletionRequest

        async def once():
            request = CompletionRequest(model=self.model, prompt=ids, max_tokens=max_tokens, add_special_tokens=False)
            async for _ in self._handle.completions.remote(request, None):
                pass

        started = time.perf_counter()
        self._loop.run_until_complete(once())
        return time.perf_counter() - started

    def close(self) -> None:
        """Shut the handle's router down on its loop. The loop stays open:
        ``serve.shutdown()`` later shuts cached handles down again, scheduling
        on this loop, which must then still exist."""
        self._loop.run_until_complete(self._handle.shutdown_async())
