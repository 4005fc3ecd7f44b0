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


def test_the_replicas_spans_ride_on_the_first_item_and_are_taken_off():
    heard = []

    async def run():
        stream = tag_stream(_items("a", "b"), "pool-x#1", spans=lambda: (("server", 0.25),))
        replica, first = await read_replica_tag(stream, on_spans=heard.append)
        return replica, first, [item async for item in stream]

    assert asyncio.run(run()) == ("pool-x#1", "a", ["b"])
    assert heard == [(("server", 0.25),)]


def test_spans_are_read_when_the_first_item_is_ready():
    read_at = []

    async def run():
        async def engine():
            read_at.append("engine")
            yield "a"

        stream = tag_stream(engine(), "pool-x#1", spans=lambda: read_at.append("spans") or ())
        await read_replica_tag(stream)

    asyncio.run(run())
    assert read_at == ["engine", "spans"]
