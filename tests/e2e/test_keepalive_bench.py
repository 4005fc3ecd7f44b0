"""``vllm bench serve`` (0.29) through a long prefill with heartbeats firing.

Its SSE handling strips every network chunk before splitting on blank lines,
so a heartbeat comment that arrives alone loses its terminator and the next
event glues onto it: that event is lost, and so is every later one that
arrives alone. A ``blank`` heartbeat (a bare newline) strips to nothing and is
skipped, so ``--header x-stream-heartbeat=blank`` makes the same run succeed.
That comment beats lose the events is shown in-process, on the same frames
and vLLM's own StreamedResponseHandler
(tests/deployments/dispatch/test_keepalive_frames.py): a second benchmark
run here (a vLLM import and three long prefills) only repeated it.

The run is the real benchmark against il25-long (heartbeat every
LONG_POOL_HEARTBEAT_S, tests/e2e/conftest.py), three requests one after
another, each a random prompt from a new offset, so none hits the prefix
cache. One output token per request: its event is the only one with a
choice, so losing it fails the request (with more tokens a read that happens
to carry two events lets the second through and hides the loss).
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import LONG_POOL_HEARTBEAT_S
from tests.support.vllm_bench import run_bench

pytestmark = pytest.mark.e2e

IL25 = "internlm2_5-7b-chat-1m"
# Near the top of il25-long's band [4097, 10240] (the server's count of the
# random text is within a token of it): a prefill of about a second on the
# CPU demo, ten heartbeats.
INPUT_LEN = 9500
PROMPTS = 3


def _bench(cluster, demo_models, tmp_path, seed: int, headers: dict[str, str] | None = None) -> dict:
    return run_bench(cluster.base_url, IL25, demo_models / "tiny-internlm2_5-chat-1m", tmp_path,
                     input_len=INPUT_LEN, seed=seed, prompts=PROMPTS, headers=headers)


def test_vllm_bench_completes_with_blank_heartbeats(cluster, demo_models, tmp_path):
    result = _bench(cluster, demo_models, tmp_path, seed=1701, headers={"x-stream-heartbeat": "blank"})
    assert (result["completed"], result["failed"]) == (PROMPTS, 0), result["errors"]
    # Every first token came several heartbeats after its request: the stream
    # was committed and beating while the prefill ran.
    assert min(result["ttfts"]) > 3 * LONG_POOL_HEARTBEAT_S, result["ttfts"]
