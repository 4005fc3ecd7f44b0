"""vLLM's per-request stats as spans, read from the engine's output processor by request id.

The stats are vLLM's own RequestStateStats; the output processor around them
is a stand-in holding only the two maps the reader looks in (a real one
needs a running engine, which tests/e2e/test_server_timing.py has).
"""

from types import SimpleNamespace

import pytest
from vllm.v1.metrics.stats import RequestStateStats

from deployments.engine_spans import vllm_request_id, vllm_spans


def engine_with(external: str, internal: str, stats):
    processor = SimpleNamespace(external_req_ids={external: [internal]},
                                request_states={internal: SimpleNamespace(stats=stats)})
    return SimpleNamespace(output_processor=processor)


def test_the_engines_queue_and_prefill_come_from_its_own_timestamps():
    stats = RequestStateStats(arrival_time=1000.0, queued_ts=50.0, scheduled_ts=50.5, first_token_ts=52.0,
                              first_token_latency=2.25)
    spans = dict(vllm_spans(engine_with(vllm_request_id("abc"), "abc-internal", stats), "abc"))
    assert spans == pytest.approx({"vllm_ttft": 2.25, "vllm_queue": 0.5, "vllm_prefill": 1.5})


def test_no_spans_before_the_first_token_for_an_unknown_request_or_another_layout():
    waiting = RequestStateStats(arrival_time=1000.0, queued_ts=50.0)
    assert vllm_spans(engine_with(vllm_request_id("abc"), "abc", waiting), "abc") == ()
    assert vllm_spans(engine_with(vllm_request_id("abc"), "abc", waiting), "other") == ()
    assert vllm_spans(SimpleNamespace(), "abc") == ()
    assert vllm_spans(None, "abc") == ()
