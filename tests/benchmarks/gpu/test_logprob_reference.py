"""benchmarks/gpu/logprob_reference.py (the GPU validation's reference) agrees with the CPU test reference.

Both evaluate the same checkpoint independently: the GPU one in SDPA with
per-architecture weight names, the CPU one (tests/support/rope) as the e2e
tests use it. On the demo checkpoints of both layouts, in float32 on the
CPU, their next-token distributions must match at any rotary base; a
layout or naming slip in the GPU reference shows here, not on the GPU.
"""

import pytest
import torch

from benchmarks.gpu.logprob_reference import InternLMReference
from tests.support.rope.compare import random_prompt
from tests.support.rope.reference import ReferenceModel


@pytest.mark.parametrize("checkpoint", ["tiny-internlm2_5-chat-1m", "tiny-internlm3-8b-instruct"])
def test_gpu_reference_matches_the_cpu_reference(demo_models, checkpoint):
    path = demo_models / checkpoint
    gpu_reference = InternLMReference(path, device="cpu", dtype=torch.float32)
    cpu_reference = ReferenceModel(path)
    ids = random_prompt(300, seed=3)
    native = float(gpu_reference.config["rope_theta"])
    for base in (native, native * 40):
        ours = gpu_reference.next_token_logprobs(ids, base).double()
        expected = cpu_reference.logprobs(ids, rope_base=base)[1]
        assert (ours - expected).abs().max().item() < 1e-3, f"base {base}"
    # The comparison can fail: another base moves the distribution.
    moved = gpu_reference.next_token_logprobs(ids, native * 40).double() - cpu_reference.logprobs(ids, rope_base=native)[1]
    assert moved.abs().max().item() > 1e-2


def test_gpu_reference_refuses_an_unknown_architecture(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ValueError, match="not llama"):
        InternLMReference(tmp_path, device="cpu")
