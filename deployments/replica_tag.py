"""The replica-tag protocol between a pool replica and the ingress, both halves.

Clients and the affinity metrics need to know which engine replica answered
(the ``x-replica`` header), and neither Ray Serve LLM's responses nor Serve's
handle report it. So a pool replica puts one ``ReplicaTag`` before the first
item of every completions stream (``tag_stream``, in ``PoolServer``), and
the ingress takes it off before anything reaches the client
(``read_replica_tag``). An untagged stream (a server without the tag) reads
as an unknown replica, ``""``.

The replica also times its part of the first answer: the first item comes
wrapped in a ``TimedItem`` carrying the replica's spans (its server, vLLM's
own per-request stats; deployments/engine_spans.py), which the ingress adds
to the response's ``Server-Timing`` header and unwraps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable


@dataclass(frozen=True)
class ReplicaTag:
    """Names the engine replica serving a request (the ``x-replica`` header)."""

    replica: str


@dataclass(frozen=True)
class TimedItem:
    """The first item of a stream, with the replica's spans up to it: (name, seconds) pairs."""

    item: Any
    spans: tuple[tuple[str, float], ...]


Spans = Callable[[], tuple[tuple[str, float], ...]]


def tag_stream(stream: AsyncIterator[Any], replica: str, spans: Spans | None = None) -> AsyncIterator[Any]:
    """Pool side: ``stream`` with a ``ReplicaTag(replica)`` in front; its first
    item wrapped with ``spans()``, read when that item is ready."""

    async def tagged():
        yield ReplicaTag(replica)
        first = True
        async for item in stream:
            if first and spans is not None:
                item = TimedItem(item, spans())
            first = False
            yield item

    return tagged()


async def read_replica_tag(stream: AsyncIterator[Any], on_tag=None, on_spans=None) -> tuple[str, Any]:
    """Ingress side: the replica that serves ``stream`` and the stream's first real item.

    ``on_tag(replica)`` is called as soon as the tag arrives, before the
    first item (which a long prefill delays): the keep-alive names the
    replica in the headers it commits early. ``on_spans(spans)`` hears the
    replica's spans of the first item, when it sends them.
    """
    replica, first = "", await stream.__anext__()
    if isinstance(first, ReplicaTag):
        if on_tag is not None:
            on_tag(first.replica)
        replica, first = first.replica, await stream.__anext__()
    if isinstance(first, TimedItem):
        if on_spans is not None:
            on_spans(first.spans)
        first = first.item
    return replica, first
