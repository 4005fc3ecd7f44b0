"""Correct dynamic NTK RoPE past the native window (issue 3).

Public surface for the serving core (no torch/vLLM import at this level):

* ``max_supported_len(native_context, rope_scaling)``
* ``engine_kwargs_for_pool(native_context=, rope_scaling=, max_model_len=, band_max_tokens=)``
* ``runtime_env_vars()``

The engine-side half is the ``internlm_rope`` vLLM general plugin
(``deployments.rope.plugin:register``); ``deployments.rope.reference`` holds
the plain-PyTorch reference forward pass the tests compare against.
"""

from deployments.rope.pool import (
    NTK_SEQ_LEN_ATTR,
    PLUGIN_NAME,
    engine_kwargs_for_pool,
    max_supported_len,
    runtime_env_vars,
)

__all__ = [
    "NTK_SEQ_LEN_ATTR",
    "PLUGIN_NAME",
    "engine_kwargs_for_pool",
    "max_supported_len",
    "runtime_env_vars",
]
