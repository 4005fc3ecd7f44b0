"""The replica-tag protocol: the pool puts the tag first, the ingress takes it off."""

import asyncio

from deployments.replica_tag import read_replica_tag, tag_stream


async def _items(*items):
    for item in items:
        yield item


def test_tag_round_trip_leaves_the_stream_untouched():
    async def run():
        stream = tag_stream(_items("a", "b"), "pool-x#1")
        replica, first = await read_replica_tag(stream)
        return replica, first, [item async for item in stream]

    assert asyncio.run(run()) == ("pool-x#1", "a", ["b"])


def test_an_untagged_stream_reads_as_an_unknown_replica():
    async def run():
        stream = _items("a", "b")
        replica, first = await read_replica_tag(stream)
        return replica, first, [item async for item in stream]

    assert asyncio.run(run()) == ("", "a", ["b"])
