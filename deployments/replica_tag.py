"""The replica-tag protocol between a pool replica and the ingress, both halves.

Clients and the affinity metrics need to know which engine replica answered
(the ``x-replica`` header), and neither Ray Serve LLM's responses nor Serve's
handle report it. So a pool replica puts one ``ReplicaTag`` before the first
item of every completions stream (``tag_stream``, in ``PoolServer``), and
the ingress takes it off before anything reaches the client
(``read_replica_tag``). An untagged stream (a server without the tag) reads
as an unknown replica, ``""``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator


@dataclass(frozen=True)
class ReplicaTag:
    """Names the engine replica serving a request (the ``x-replica`` header)."""

    replica: str


def tag_stream(stream: AsyncIterator[Any], replica: str) -> AsyncIterator[Any]:
    """Pool side: ``stream`` with a ``ReplicaTag(replica)`` in front."""

    async def tagged():
        yield ReplicaTag(replica)
        async for item in stream:
            yield item

    return tagged()


async def read_replica_tag(stream: AsyncIterator[Any], on_tag=None) -> tuple[str, Any]:
    """Ingress side: the replica that serves ``stream`` and the stream's first real item.

    ``on_tag(replica)`` is called as soon as the tag arrives, before the
    first item (which a long prefill delays): the keep-alive names the
    replica in the headers it commits early.
    """
    first = await stream.__anext__()
    if isinstance(first, ReplicaTag):
        if on_tag is not None:
            on_tag(first.replica)
        return first.replica, await stream.__anext__()
    return "", first
