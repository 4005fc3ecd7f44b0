"""Band policy: the smallest band of the model that fits prompt + max_tokens."""

import pytest

from cluster.config import ClusterConfig
from deployments.routing.bands import BandPolicy, NoPoolFits, UnknownModel

CLUSTER = ClusterConfig.model_validate(
    {
        "models": {
            "a": {"path": "/x/a", "native_context": 4096, "rope_scaling": {"type": "dynamic", "factor": 2.5}},
            "b": {"path": "/x/b", "native_context": 2048},
        },
        "pools": [
            {"name": "a-long", "model": "a", "band": [2049, 10240], "engine": {"max_model_len": 10240}},
            {"name": "a-short", "model": "a", "band": [0, 2048], "engine": {"max_model_len": 2048}},
            {"name": "b-only", "model": "b", "band": [1, 2048], "engine": {"max_model_len": 2048}},
        ],
    }
)


@pytest.fixture
def policy():
    return BandPolicy(CLUSTER)


@pytest.mark.parametrize(
    "prompt, max_tokens, pool",
    [(1, 1, "a-short"), (2000, 48, "a-short"), (2000, 49, "a-long"), (10000, 240, "a-long")],
)
def test_smallest_fitting_band(policy, prompt, max_tokens, pool):
    decision = policy.choose("a", prompt, max_tokens)
    assert decision.pool.name == pool
    assert (decision.prompt_tokens, decision.max_tokens) == (prompt, max_tokens)


def test_over_every_band_names_count_and_limit(policy):
    with pytest.raises(NoPoolFits) as info:
        policy.choose("a", 10000, 241)
    assert info.value.limit == 10240
    assert "10241 tokens" in str(info.value) and "limit of 10240" in str(info.value)


def test_unknown_model_lists_models(policy):
    with pytest.raises(UnknownModel, match="available models: a, b"):
        policy.choose("zzz", 1, 1)


def test_models_are_routed_independently(policy):
    assert policy.choose("b", 100, 100).pool.name == "b-only"
    with pytest.raises(NoPoolFits):
        policy.choose("b", 2000, 100)


def test_unset_max_tokens_is_shortened_to_fit(policy):
    assert policy.completion_budget("a", 100, None, 64) == 64
    assert policy.completion_budget("a", 10200, None, 64) == 40
    assert policy.completion_budget("a", 10200, 500, 64) == 500
