"""`python -m cluster smoke`, the chart's `helm test`, against the CPU demo cluster.

The very command the test pod runs: one completion steered into every pool and a document
uploaded, asked and deleted. The completions hang up after their first token, so the engines
must show nothing left running afterwards (a random demo model would otherwise generate up to
il25-long's band bound of 4,097 tokens).
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.e2e.helpers import engine_generation_tokens, pool_in_flight, settled, wait_until

pytestmark = pytest.mark.e2e


# Tokens the engines may generate for the whole run: one or two per pool before the hang-up
# reaches them, and the document's answer (max_tokens 4).
GENERATED_AT_MOST = 64


def test_smoke_passes_every_pool_and_leaves_nothing_running(cluster, http):
    generated_before = settled(lambda: engine_generation_tokens(cluster.metrics_url))
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "cluster", "smoke", "--base-url", cluster.base_url, "--timeout-s", "120"],
        capture_output=True, text=True, timeout=180,
    )
    print(f"{result.stdout}python -m cluster smoke: {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for pool in cluster.config.pools:
        assert any(line.startswith(f"pool {pool.name} ") and ": ok, first token" in line for line in lines), \
            result.stdout
    assert any(line.startswith("document: ok, uploaded doc-") and line.endswith("deleted") for line in lines)
    assert lines[-1] == "smoke: passed"
    # Every hang-up was taken as a cancel: no admission slot held, and the engines stopped
    # generating (the count settles) a few tokens in, not at the bands' bounds.
    for pool in cluster.config.pools:
        wait_until(lambda: pool_in_flight(http, pool.name) == 0, 30, f"{pool.name}'s admission slots")
    generated = settled(lambda: engine_generation_tokens(cluster.metrics_url)) - generated_before
    assert 0 < generated <= GENERATED_AT_MOST
