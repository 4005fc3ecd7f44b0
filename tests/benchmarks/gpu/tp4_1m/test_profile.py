"""benchmarks/gpu/tp4_1m/profile.py: the prompts the stages share."""

from benchmarks.gpu.tp4_1m import profile


def test_ours_and_stock_send_the_same_prompt():
    assert profile.prompt_ids(1000) == profile.prompt_ids(1000)
    assert profile.prompt_ids(1000) != profile.prompt_ids(1001)[:1000]
