"""The planner's model arithmetic (cluster/planner/architecture.py) against the published checkpoints."""

import pytest

from cluster.planner import ARCHITECTURES, GIB, PlanError
from tests.cluster.planner.synthetic import gpu_profile, plan_of

IL25 = ARCHITECTURES["InternLM2ForCausalLM"]
IL3 = ARCHITECTURES["InternLM3ForCausalLM"]


def test_parameter_counts_match_the_published_checkpoints():
    assert IL25.params == pytest.approx(7.74e9, rel=0.002)
    assert IL3.params == pytest.approx(8.80e9, rel=0.002)
    # bf16 weights: 15.5 GB and 17.6 GB (decimal) as published.
    assert IL25.params * 2 / 1e9 == pytest.approx(15.5, abs=0.05)
    assert IL3.params * 2 / 1e9 == pytest.approx(17.6, abs=0.05)


@pytest.mark.parametrize(
    "arch, kv_heads, bytes_, expected",
    [
        (IL25, 8, 2, 128 * 1024),
        (IL25, 8, 1, 64 * 1024),
        (IL3, 2, 2, 48 * 1024),
        (IL3, 2, 1, 24 * 1024),
    ],
)
def test_kv_bytes_per_token(arch, kv_heads, bytes_, expected):
    assert arch.kv_bytes_per_token(kv_heads, bytes_) == expected
    # 1M tokens of bf16 KV: 128 GiB for InternLM2.5, 48 GiB for InternLM3.
    if bytes_ == 2:
        assert arch.kv_bytes_per_token(kv_heads, bytes_) * 2**20 / GIB in (128, 48)


def test_invalid_tensor_parallel_size_is_a_problem():
    plan = plan_of(gpu_profile(engine={"tensor_parallel_size": 3}))
    assert not plan.fits
    assert any("does not divide 32 attention heads" in p for p in plan.problems)


def test_missing_architecture_hint_is_a_clear_error():
    raw = gpu_profile()
    del raw["models"]["m"]["architecture"]
    with pytest.raises(PlanError, match="architecture"):
        plan_of(raw)
    raw["models"]["m"]["architecture"] = "GPT2LMHeadModel"
    with pytest.raises(PlanError, match="unknown architecture"):
        plan_of(raw)
