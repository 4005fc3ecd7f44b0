"""The rotary length each request is rotated with: per mode, in-window prompts, documents, salts.

Bases are checked with deployments.rope.ntk.dynamic_ntk_base (the formula the
engine uses), not with the policy's own ratio arithmetic.
"""

from __future__ import annotations

import pytest

from cluster.config import ClusterConfig
from deployments.rope import ROPE_SEQ_LEN_XARG
from deployments.rope.ntk import dynamic_ntk_base
from deployments.routing.rope_base import RopeBasePolicy, bucket_top

THETA = 50_000_000.0
# The published models' RoPE facts (rotary dim 128) on the production bands.
IL25 = {"path": "/x/il25", "native_context": 262_144, "rope_scaling": {"type": "dynamic", "factor": 2.5},
        "rotary_dim": 128}
IL3 = {"path": "/x/il3", "native_context": 32_768, "rope_scaling": {"rope_type": "dynamic", "factor": 6.0},
       "rotary_dim": 128}


def cluster(mode: str, bucket_ratio: float = 1.25) -> ClusterConfig:
    rope = {"mode": mode, "bucket_ratio": bucket_ratio}
    return ClusterConfig.model_validate({
        "models": {"il25": IL25, "il3": IL3},
        "pools": [
            {"name": "il25-short", "model": "il25", "band": [0, 262_144], "engine": {"max_model_len": 262_144},
             "rope_base": rope},
            {"name": "il25-long", "model": "il25", "band": [262_145, 1_048_576],
             "engine": {"max_model_len": 1_048_576}, "rope_base": rope},
            {"name": "il3-short", "model": "il3", "band": [0, 32_768], "engine": {"max_model_len": 32_768}},
            {"name": "il3-long", "model": "il3", "band": [32_769, 196_608], "engine": {"max_model_len": 196_608},
             "rope_base": rope},
        ],
    })


def base(model: dict, seq_len: int) -> float:
    return dynamic_ntk_base(THETA, model["rope_scaling"]["factor"], model["native_context"], seq_len, 128)


@pytest.mark.parametrize("mode", ["pool", "request", "bucket"])
def test_prompt_inside_the_window_gets_the_stock_base_in_every_mode(mode):
    config = cluster(mode)
    policy = RopeBasePolicy(config)
    # InternLM3: 31,745 prompt tokens + the default 1,024 max_tokens land in the long pool.
    choice = policy.choose(config.pool("il3-long"), 31_745)
    assert choice.seq_len == 32_768 and choice.base_ratio == pytest.approx(1.0)
    assert policy.choose(config.pool("il3-long"), 32_768).seq_len == 32_768
    # ... also a document question inside the window.
    assert policy.choose(config.pool("il3-long"), 32_000, document_seq_len=40_000).seq_len == 32_768


@pytest.mark.parametrize("mode", ["pool", "request", "bucket"])
def test_pools_inside_the_window_send_nothing(mode):
    config = cluster(mode)
    assert RopeBasePolicy(config).choose(config.pool("il25-short"), 200_000) is None


def test_pool_mode_uses_the_band_maximum_with_the_issues_distances():
    config = cluster("pool")
    policy = RopeBasePolicy(config)
    il25 = policy.choose(config.pool("il25-long"), 300_000)
    assert il25.seq_len == 1_048_576
    assert il25.base_ratio == pytest.approx(base(IL25, 1_048_576) / base(IL25, 300_000))
    assert 6 < il25.base_ratio < 7  # "about 6x"
    il3 = policy.choose(config.pool("il3-long"), 40_000)
    assert il3.base_ratio == pytest.approx(base(IL3, 196_608) / base(IL3, 40_000))
    assert 13.5 < il3.base_ratio < 14.5  # "about 14x"


def test_request_mode_is_the_prompts_own_length():
    config = cluster("request")
    policy = RopeBasePolicy(config)
    for prompt in (32_769, 40_000, 196_000):
        choice = policy.choose(config.pool("il3-long"), prompt)
        assert (choice.seq_len, choice.own_seq_len) == (prompt, prompt)
        assert choice.base_ratio == pytest.approx(1.0)
        assert choice.xargs() == {ROPE_SEQ_LEN_XARG: prompt}


@pytest.mark.parametrize("ratio", [1.1, 1.25, 2.0])
def test_bucket_tops_are_the_ratio_apart_in_base(ratio):
    model = cluster("bucket").models["il3"]
    tops = [32_768]
    while tops[-1] < 196_608:
        tops.append(bucket_top(model, ratio, tops[-1] + 1))
    for lower, upper in zip(tops, tops[1:]):
        # Tops are whole tokens: within the base change of one token of the exact ratio.
        assert base(IL3, upper) / base(IL3, lower) == pytest.approx(ratio, rel=1e-3)
        assert bucket_top(model, ratio, upper) == upper  # a top is its own bucket's top


def test_bucket_mode_keeps_every_prompt_within_the_ratio_and_shares_a_bucket():
    config = cluster("bucket", 1.25)
    policy = RopeBasePolicy(config)
    pool = config.pool("il3-long")
    for prompt in range(32_769, 196_608, 997):
        choice = policy.choose(pool, prompt)
        assert prompt <= choice.seq_len <= 196_608
        assert 1.0 <= base(IL3, choice.seq_len) / base(IL3, prompt) <= 1.25 * 1.001
    # A conversation growing by a few hundred tokens a turn stays in one bucket for several turns.
    turns = [policy.choose(pool, 50_000 + 300 * turn).seq_len for turn in range(5)]
    assert len(set(turns)) == 1
    # The top bucket is cut at the pool's own length, never beyond it.
    assert policy.choose(pool, 196_000).seq_len == 196_608


@pytest.mark.parametrize("mode", ["request", "bucket"])
def test_every_question_on_a_document_shares_one_length(mode):
    config = cluster(mode)
    policy = RopeBasePolicy(config)
    pool = config.pool("il25-long")
    prefix, budget = 300_000, 1_088
    choices = [policy.choose(pool, prefix + question, document_seq_len=prefix + budget) for question in (9, 80, 700)]
    assert {c.seq_len for c in choices} == {prefix + budget}
    assert len({c.cache_salt(None) for c in choices}) == 1
    # The distance each question reports: its base over the base for its own length.
    assert choices[0].base_ratio == pytest.approx(base(IL25, prefix + budget) / base(IL25, prefix + 9))


def test_pool_mode_documents_keep_the_pool_length():
    config = cluster("pool")
    choice = RopeBasePolicy(config).choose(config.pool("il25-long"), 300_100, document_seq_len=301_088)
    assert choice.seq_len == 1_048_576


def test_cache_salt_names_the_length_and_keeps_the_clients_salt():
    config = cluster("request")
    policy = RopeBasePolicy(config)
    pool = config.pool("il3-long")
    short, long = policy.choose(pool, 40_000), policy.choose(pool, 40_001)
    assert short.cache_salt(None) != long.cache_salt(None)
    assert short.cache_salt("tenant-a") != short.cache_salt("tenant-b")
    assert short.cache_salt("tenant-a") != long.cache_salt("tenant-a")
    assert short.cache_salt("tenant-a").endswith("tenant-a")
