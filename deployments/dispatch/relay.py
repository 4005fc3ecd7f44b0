"""Engine answers to HTTP: one JSON body, or the engine's SSE relayed as it streams.

A streamed answer never hangs the client: an engine that stalls past the
pool's timeout or dies mid-stream ends the stream with an SSE error event,
and a client that goes away cancels the engine's work.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator, Iterator

from starlette.background import BackgroundTask
from starlette.responses import JSONResponse, Response, StreamingResponse

from deployments.chat_format import ChatStreamRewriter, chat_response, merge_choices, reindex_choices, sse_texts
from deployments.errors import ErrorCode, sse_error_event
from deployments.metrics import RouterMetrics
from deployments.routing.admission import Ticket
from deployments.routing.bands import RouteDecision

POOL_HEADER = "x-pool"
REPLICA_HEADER = "x-replica"
ROPE_SEQ_LEN_HEADER = "x-rope-seq-len"
ROPE_BASE_RATIO_HEADER = "x-rope-base-ratio"


class EngineCall:
    """An engine call from its admission to its last item; the one owner of
    its admission ticket.

    The ticket goes back exactly once, through ``close()``: when a
    non-streaming call has its answer, when a stream ends (``sse()``), or on
    ``abort()``, which also stops the engine (a refusal, a failure, a client
    gone, a sibling call that could not start).
    """

    def __init__(self, decision: RouteDecision, request, ticket: Ticket, timeout: float):
        self.decision, self.request, self.timeout = decision, request, timeout
        self._ticket = ticket
        self.stream = None  # the pool handle's response, once called
        self.replica, self.first = "", None

    def close(self) -> None:
        """Give the admission ticket back (idempotent)."""
        self._ticket.release()

    def abort(self) -> None:
        if self.stream is not None:
            self.stream.cancel()
        self.close()

    @contextlib.contextmanager
    def aborted_on_error(self) -> Iterator[EngineCall]:
        """Whatever is raised inside (the client going away included) stops
        the engine and gives the ticket back."""
        try:
            yield self
        except BaseException:
            self.abort()
            raise

    async def sse(self, *, final_done: bool = True) -> AsyncIterator[str]:
        """The engine's SSE text; errors become an error event, never a hang."""
        stream, timeout = self.stream, self.timeout
        done = False
        finished = False

        async def items():
            yield self.first
            while True:
                try:
                    async with asyncio.timeout(timeout):
                        item = await stream.__anext__()
                except StopAsyncIteration:
                    return
                yield item

        try:
            async for item in items():
                for text in sse_texts(item):
                    if "data: [DONE]" in text:
                        done = True
                        if not final_done:
                            text = text.replace("data: [DONE]\n\n", "")
                    if text:
                        yield text
            finished = True
        except TimeoutError:
            yield sse_error_event(ErrorCode.TIMEOUT, f"the engine sent nothing for {timeout:.0f} s")
        except Exception as exc:  # the engine died mid-stream: tell the client, don't hang
            yield sse_error_event(ErrorCode.ENGINE_FAILED, f"the engine failed while streaming: {type(exc).__name__}")
        finally:
            if not finished:
                # Client gone (cancelled or closed) or engine failed: make sure
                # the engine stops working on an answer nobody will read.
                stream.cancel()
            self.close()
        if final_done and not done:
            yield "data: [DONE]\n\n"


def response_headers(calls: list[EngineCall], server_timing: str) -> dict[str, str]:
    return {
        POOL_HEADER: ",".join(dict.fromkeys(c.decision.pool.name for c in calls)),
        REPLICA_HEADER: ",".join(dict.fromkeys(c.replica for c in calls)),
        "x-prompt-tokens": ",".join(str(c.decision.prompt_tokens) for c in calls),
        **rope_headers([c.decision for c in calls]),
        "server-timing": server_timing,
    }


def rope_headers(decisions: list[RouteDecision]) -> dict[str, str]:
    """x-rope-seq-len (the L each prompt was rotated for) and x-rope-base-ratio (its base over
    the base for its own length; 1 is exact), one entry per prompt, ``-`` for a pool inside the
    native window (stock rotary); none at all when no prompt reached past it."""
    if all(d.rope is None for d in decisions):
        return {}
    return {
        ROPE_SEQ_LEN_HEADER: ",".join("-" if d.rope is None else str(d.rope.seq_len) for d in decisions),
        ROPE_BASE_RATIO_HEADER: ",".join(
            "-" if d.rope is None or d.rope.base_ratio is None else f"{d.rope.base_ratio:.4g}" for d in decisions
        ),
    }


def json_payload(calls: list[EngineCall], metrics: RouterMetrics, *, chat: bool) -> dict:
    """The JSON body of finished non-streaming calls."""
    payloads = []
    for c in calls:
        payload = c.first.model_dump(mode="json")
        metrics.completed(c.request.model, c.decision.pool.name,
                          (payload.get("usage") or {}).get("completion_tokens", 0))
        payloads.append(chat_response(payload) if chat else payload)
    return merge_choices(payloads) if len(payloads) > 1 else payloads[0]


def sse_body(calls: list[EngineCall], *, chat: bool) -> AsyncIterator[str]:
    """The SSE text of streaming calls; their tickets go back as each stream ends."""
    return _relay(calls[0], chat=chat) if len(calls) == 1 else _relay_many(calls)


def respond(calls: list[EngineCall], server_timing: str, metrics: RouterMetrics, *, chat: bool) -> Response:
    """The HTTP response of one or several engine calls (choice i = call i)."""
    headers = response_headers(calls, server_timing)
    if not calls[0].request.stream:
        return JSONResponse(json_payload(calls, metrics, chat=chat), headers=headers)
    return StreamingResponse(
        sse_body(calls, chat=chat),
        media_type="text/event-stream",
        headers=headers,
        # Also given back here in case the stream is never iterated.
        background=BackgroundTask(lambda: [c.close() for c in calls]),
    )


async def _relay(call: EngineCall, *, chat: bool) -> AsyncIterator[str]:
    rewriter = ChatStreamRewriter() if chat else None
    # aclosing: a client gone while this waits at a yield closes the engine
    # call's stream at once (not whenever the generator is collected).
    async with contextlib.aclosing(call.sse()) as texts:
        async for text in texts:
            yield rewriter.rewrite(text) if rewriter is not None else text


async def _relay_many(calls: list[EngineCall]) -> AsyncIterator[str]:
    """Interleave several chat streams; choice index = the prompt's position."""
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(index: int, call: EngineCall):
        rewriter = ChatStreamRewriter()
        try:
            async with contextlib.aclosing(call.sse(final_done=False)) as texts:
                async for text in texts:
                    await queue.put(reindex_choices(rewriter.rewrite(text), index))
        finally:
            await queue.put(None)

    pumps = [asyncio.ensure_future(pump(i, c)) for i, c in enumerate(calls)]
    try:
        remaining = len(pumps)
        while remaining:
            text = await queue.get()
            if text is None:
                remaining -= 1
            elif text:
                yield text
        yield "data: [DONE]\n\n"
    finally:
        for task in pumps:
            task.cancel()
