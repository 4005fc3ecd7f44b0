"""Keep-alive before the first token: commit the response early, then beat until the engine answers.

A long prefill sends nothing for minutes, and proxies close idle connections
first (AWS ALB and nginx after 60 s, Envoy after 300 s). So when a pool's
engine has not answered within its heartbeat (``stream_heartbeat_s``,
``nonstream_heartbeat_s``), the ingress commits ``200`` with the pool's
headers and keeps bytes flowing:

* streaming: a frame at once and every heartbeat until the first token, then
  the engine's stream as usual. The frame is the pool's
  ``stream_heartbeat_frame`` or the request's ``x-stream-heartbeat`` header:
  ``comment`` (an SSE comment ``: prefill <elapsed>s``, which SSE parsers
  ignore and curl shows) or ``blank`` (a bare newline: a blank line with no
  data dispatches nothing in any SSE parser, yet it resets idle timers like
  any byte). ``blank`` exists because some clients mishandle comments:
  ``vllm bench serve`` 0.29 strips every network chunk before splitting on
  blank lines, so a comment arriving alone loses its terminator and the next
  event glues onto it and is lost; a chunk of only a newline strips to
  nothing and is skipped. The header's ``off`` sends no heartbeat at all;
* non-streaming (opt-in): one space at once and every heartbeat, then the
  JSON body; leading whitespace is valid JSON for every parser.

Once committed the status cannot change: an error (the pool's timeout, an
engine refusal or failure) becomes an SSE error event followed by
``data: [DONE]``, or an ``{"error": ...}`` JSON body, in the same shape as the
4xx/5xx body it would have had. A client that leaves while waiting cancels the
engine call.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Literal

from starlette.responses import StreamingResponse

from cluster.config import ClusterConfig
from cluster.config.ingress import HeartbeatFrame
from deployments.errors import APIError, ErrorCode, error_body
from deployments.dispatch.relay import json_payload, sse_body
from deployments.metrics import RouterMetrics

# x-replica at commit time for a call whose replica has not yet been named
# (the pool's replica sends its name before the engine starts; a request still
# queued in Serve's router has none yet).
PENDING_REPLICA = "pending"
DONE = "data: [DONE]\n\n"


# The request header that picks a streaming request's heartbeat.
HEARTBEAT_HEADER = "x-stream-heartbeat"
HEARTBEAT_CHOICES = ("comment", "blank", "off")
HeartbeatChoice = Literal["comment", "blank", "off"]


def prefill_comment(elapsed_s: float) -> str:
    return f": prefill {elapsed_s:.1f}s\n\n"


def blank_line(_elapsed_s: float) -> str:
    return "\n"


STREAM_FRAMES: dict[HeartbeatFrame, Callable[[float], str]] = {"comment": prefill_comment, "blank": blank_line}


def heartbeat_choice(value: str | None) -> HeartbeatChoice | None:
    """A request's ``x-stream-heartbeat`` header, checked; None when it has none."""
    if value is None:
        return None
    choice = value.strip().lower()
    if choice not in HEARTBEAT_CHOICES:
        raise APIError(ErrorCode.INVALID_HEADER, f"header {HEARTBEAT_HEADER} must be one of "
                       f"{', '.join(HEARTBEAT_CHOICES)}; got {value!r}", param=HEARTBEAT_HEADER)
    return choice  # type: ignore[return-value]


def requested_heartbeat(headers) -> HeartbeatChoice | None:
    """The heartbeat a request's headers ask for (``x-stream-heartbeat``), checked."""
    return heartbeat_choice(headers.get(HEARTBEAT_HEADER))


@dataclass(frozen=True)
class Heartbeat:
    """One request's keep-alive: every ``interval_s`` (0: off), as ``frame`` when streaming."""

    interval_s: float
    frame: HeartbeatFrame = "comment"


def request_heartbeat(cluster: ClusterConfig, pool: str, *, stream: bool,
                      choice: HeartbeatChoice | None) -> Heartbeat:
    """The pool's heartbeat, with a streaming request's header over the pool's frame.

    The header picks only the look or ``off``, never the interval: a pool
    with the heartbeat off stays off. Non-streaming requests ignore it (their
    frame is whitespace, valid for every JSON parser).
    """
    interval = cluster.heartbeat_s(pool, stream=stream)
    if not stream:
        return Heartbeat(interval)
    if choice == "off":
        return Heartbeat(0.0)
    return Heartbeat(interval, choice or cluster.heartbeat_frame(pool))


def committed_response(task: asyncio.Future, *, heartbeat: Heartbeat, started: float, stream: bool, chat: bool,
                       headers: dict[str, str], metrics: RouterMetrics) -> StreamingResponse:
    """A 200 committed before ``task`` (the engine calls' start) has finished."""
    heartbeat_s = heartbeat.interval_s
    if stream:
        return StreamingResponse(_sse(task, heartbeat_s, started, chat, STREAM_FRAMES[heartbeat.frame]),
                                 media_type="text/event-stream", headers=headers)
    return StreamingResponse(_json(task, heartbeat_s, started, chat, metrics), media_type="application/json",
                             headers=headers)


async def _beats(task: asyncio.Future, heartbeat_s: float, started: float,
                 beat: Callable[[float], str]) -> AsyncIterator[str]:
    """One beat now, then one every heartbeat until ``task`` is done."""
    yield beat(time.monotonic() - started)
    while True:
        done, _ = await asyncio.wait({task}, timeout=heartbeat_s)
        if done:
            return
        yield beat(time.monotonic() - started)


def _failure_body(task: asyncio.Future) -> dict | None:
    """The error body of a start that failed, or None when it succeeded."""
    try:
        task.result()
    except APIError as exc:
        return exc.body()
    except Exception as exc:  # noqa: BLE001 - the engine died before its first token
        return error_body(ErrorCode.ENGINE_FAILED, f"the engine failed before its first token: {type(exc).__name__}")
    return None


async def _sse(task: asyncio.Future, heartbeat_s: float, started: float, chat: bool,
               frame: Callable[[float], str]) -> AsyncIterator[str]:
    handed_off = False
    try:
        async for text in _beats(task, heartbeat_s, started, frame):
            yield text
        failure = _failure_body(task)
        if failure is not None:
            yield f"data: {json.dumps(failure)}\n\n"
            yield DONE
            return
        handed_off = True
        async for text in sse_body(task.result(), chat=chat):
            yield text
    finally:
        _settle(task, handed_off)


async def _json(task: asyncio.Future, heartbeat_s: float, started: float, chat: bool,
                metrics: RouterMetrics) -> AsyncIterator[str]:
    handed_off = False
    try:
        async for text in _beats(task, heartbeat_s, started, lambda _: " "):
            yield text
        failure = _failure_body(task)
        if failure is not None:
            yield json.dumps(failure)
            return
        handed_off = True
        yield json.dumps(json_payload(task.result(), metrics, chat=chat))
    finally:
        _settle(task, handed_off)


def _settle(task: asyncio.Future, handed_off: bool) -> None:
    """Client gone before the answer was handed on: stop the engine work."""
    if not task.done():
        task.cancel()  # the start's own cleanup cancels the engine stream and frees the ticket
    elif not handed_off and not task.cancelled() and task.exception() is None:
        for call in task.result():
            call.abort()
