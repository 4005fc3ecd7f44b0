"""Correct dynamic NTK RoPE past the native window (issues 3 and 28).

Public surface for the serving core (no torch/vLLM import at this level):

* ``max_supported_len(native_context, rope_scaling)``
* ``engine_kwargs_for_pool(native_context=, rope_scaling=, max_model_len=, band_max_tokens=)``
* ``ROPE_SEQ_LEN_XARG``: the ``vllm_xargs`` key of a request's own rotary length

Modules:

  ntk.py          the dynamic NTK base formula (plain Python)
  pool.py         engine kwargs and length limits for a pool
  plugin.py       the ``internlm_rope`` vLLM general plugin's register()
  rotary.py       the rotary layer: per-token cos/sin from per-request bases
  runner_hook.py  carries each request's length from vLLM's model runner to it

The engine-side half is the ``internlm_rope`` vLLM general plugin
(``deployments.rope.plugin:register``). Engines need no environment of their
own: vLLM loads every installed general plugin when ``VLLM_PLUGINS`` is unset.
A deployment that sets ``VLLM_PLUGINS`` must include ``internlm_rope``, or
pools past the native window silently lose the fix (its absence cannot be
detected from outside the engine). The plain-PyTorch reference the tests
compare engines with is test code: ``tests/support/rope/reference.py``.
"""

from deployments.rope.pool import NTK_SEQ_LEN_ATTR, engine_kwargs_for_pool, max_supported_len

# The request's vllm_xargs key (SamplingParams.extra_args) naming the sequence
# length whose dynamic NTK base the engine rotates that request with; the
# ingress sets it (deployments/routing/rope_base.py), clients may not.
ROPE_SEQ_LEN_XARG = "longctx_rope_seq_len"

__all__ = ["NTK_SEQ_LEN_ATTR", "ROPE_SEQ_LEN_XARG", "engine_kwargs_for_pool", "max_supported_len"]
