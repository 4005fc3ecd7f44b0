"""``vllm bench serve`` (0.29) through a long prefill with heartbeats firing.

Its SSE handling strips every network chunk before splitting on blank lines,
so a heartbeat comment that arrives alone loses its terminator and every
later event glues onto it: the request fails. A ``blank`` heartbeat (a bare
newline) strips to nothing and is skipped, so ``--header
x-stream-heartbeat=blank`` makes the same run succeed. Both runs are the real
benchmark, against il25-long (heartbeat every LONG_POOL_HEARTBEAT_S,
tests/e2e/conftest.py), with a random prompt of a new seed each, so neither
hits the prefix cache.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import LONG_POOL_HEARTBEAT_S
from tests.support.vllm_bench import run_bench

pytestmark = pytest.mark.e2e

IL25 = "internlm2_5-7b-chat-1m"
# In il25-long's band [4097, 10240] whatever the server's re-tokenization of
# the random text adds; its prefill is seconds on the CPU demo.
INPUT_LEN = 7000


def _bench(cluster, demo_models, tmp_path, seed: int, headers: dict[str, str] | None = None) -> dict:
    return run_bench(cluster.base_url, IL25, demo_models / "tiny-internlm2_5-chat-1m", tmp_path,
                     input_len=INPUT_LEN, seed=seed, headers=headers)


def test_vllm_bench_completes_with_blank_heartbeats(cluster, demo_models, tmp_path):
    result = _bench(cluster, demo_models, tmp_path, seed=1701, headers={"x-stream-heartbeat": "blank"})
    assert (result["completed"], result["failed"]) == (1, 0), result["errors"]
    # The first token came many heartbeats after the request: the stream was
    # committed and beating while the prefill ran.
    assert result["ttfts"][0] > 5 * LONG_POOL_HEARTBEAT_S


def test_vllm_bench_fails_with_comment_heartbeats(cluster, demo_models, tmp_path):
    # No header: the pool's frame, comment by default.
    assert cluster.config.heartbeat_frame("il25-long") == "comment"
    result = _bench(cluster, demo_models, tmp_path, seed=1702)
    assert (result["completed"], result["failed"]) == (0, 1)
    assert "Never received a valid chunk" in result["errors"][0]
