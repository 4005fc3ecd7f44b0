"""The streaming heartbeat's frame: the header's parsing, the pool/ingress/
request resolution, and what two real SSE parsers make of each frame.

The parsers are the clients' own code, fed the chunks a committed stream sends
one by one (as they leave the ingress when beats are a heartbeat apart): the
``openai`` client's ``SSEDecoder`` and ``vllm bench serve``'s
``StreamedResponseHandler`` with the ``strip()`` its request loop applies to
every chunk. The real ``vllm bench serve`` runs against the cluster in
tests/e2e/test_keepalive_bench.py.
"""

from __future__ import annotations

import pytest

from cluster.config import load_config, profile_path
from deployments.errors import APIError, ErrorCode
from deployments.dispatch.keepalive import (
    HEARTBEAT_HEADER,
    STREAM_FRAMES,
    Heartbeat,
    heartbeat_choice,
    request_heartbeat,
)

POOL = "il25-long"
EVENTS = [
    'data: {"choices": [{"index": 0, "text": "hi"}]}\n\n',
    'data: {"choices": [{"index": 0, "text": " there"}]}\n\n',
    "data: [DONE]\n\n",
]
DATA = [event.removeprefix("data: ").strip() for event in EVENTS]


def _chunks(frame: str) -> list[str]:
    """Three beats, then the engine's events, each its own network chunk."""
    return [STREAM_FRAMES[frame](t) for t in (0.1, 0.2, 0.3)] + EVENTS


def _config(*overrides: str):
    return load_config(profile_path("cpu-demo"), list(overrides), env={})


@pytest.mark.parametrize("value, choice", [
    (None, None), ("comment", "comment"), ("blank", "blank"), ("off", "off"), (" Blank ", "blank"),
])
def test_header_values(value, choice):
    assert heartbeat_choice(value) == choice


@pytest.mark.parametrize("value", ["", "none", "0", "comments", "blank,off"])
def test_invalid_header_is_a_400_naming_the_header_and_its_values(value):
    with pytest.raises(APIError) as caught:
        heartbeat_choice(value)
    body = caught.value.body()["error"]
    assert caught.value.status_code == 400
    assert body["param"] == HEARTBEAT_HEADER and body["code"] == ErrorCode.INVALID_HEADER
    assert all(word in body["message"] for word in (HEARTBEAT_HEADER, "comment", "blank", "off"))


def test_frames_on_the_wire():
    assert STREAM_FRAMES["comment"](12.04) == ": prefill 12.0s\n\n"
    assert STREAM_FRAMES["blank"](12.04) == "\n"


def test_frame_defaults_to_comment_and_a_pool_overrides_the_ingress():
    assert request_heartbeat(_config(), POOL, stream=True, choice=None) == Heartbeat(10.0, "comment")
    config = _config("ingress.stream_heartbeat_frame=blank", "pools.il3-long.stream_heartbeat_frame=comment")
    assert request_heartbeat(config, POOL, stream=True, choice=None).frame == "blank"
    assert request_heartbeat(config, "il3-long", stream=True, choice=None).frame == "comment"


def test_header_picks_the_frame_or_off_but_never_the_interval():
    config = _config(f"pools.{POOL}.stream_heartbeat_s=2", "pools.il3-long.stream_heartbeat_s=0")
    assert request_heartbeat(config, POOL, stream=True, choice="blank") == Heartbeat(2.0, "blank")
    assert request_heartbeat(config, POOL, stream=True, choice="off").interval_s == 0
    # A pool with the heartbeat off stays off whatever the header says.
    assert request_heartbeat(config, "il3-long", stream=True, choice="comment").interval_s == 0


def test_header_leaves_non_streaming_keepalive_alone():
    config = _config(f"pools.{POOL}.nonstream_heartbeat_s=3")
    assert request_heartbeat(config, POOL, stream=False, choice="off").interval_s == 3


def test_invalid_frame_in_config_is_refused():
    with pytest.raises(ValueError, match="stream_heartbeat_frame"):
        _config(f"pools.{POOL}.stream_heartbeat_frame=newline")


def _openai_events(chunks: list[str]) -> list[str]:
    from openai._streaming import SSEDecoder

    decoder = SSEDecoder()
    return [event.data for event in decoder.iter_bytes(chunk.encode() for chunk in chunks)]


def _vllm_bench_events(chunks: list[str]) -> list[str]:
    """vllm bench serve 0.29's loop over a streamed response (endpoint_request_func.py)."""
    from vllm.benchmarks.lib.endpoint_request_func import StreamedResponseHandler

    handler, events = StreamedResponseHandler(), []
    for chunk in chunks:
        chunk_bytes = chunk.encode().strip()
        if not chunk_bytes:
            continue
        events += [m.removeprefix("data: ") for m in handler.add_chunk(chunk_bytes) if not m.startswith(":")]
    return events


@pytest.mark.parametrize("frame", sorted(STREAM_FRAMES))
def test_openai_client_parser_sees_only_the_events(frame):
    assert _openai_events(_chunks(frame)) == DATA


def test_vllm_bench_parser_sees_the_events_after_blank_beats():
    assert _vllm_bench_events(_chunks("blank")) == DATA


def test_vllm_bench_parser_loses_every_event_after_comment_beats():
    # The upstream bug: a stripped comment chunk keeps no terminator and every
    # later event glues onto it, so no message is ever split out.
    assert _vllm_bench_events(_chunks("comment")) == []
