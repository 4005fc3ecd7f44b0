"""vLLM general plugin ``internlm_rope`` (entry point in pyproject.toml).

vLLM calls ``register()`` in every process that builds or serves an engine
(front end, engine core, workers), possibly more than once per process.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

# Stock class name: vLLM's CustomOp.__new__ looks instantiations up by it, so
# registering under it swaps the class in for every get_rope() caller without
# touching vLLM's files.
STOCK_CLASS = "DynamicNTKScalingRotaryEmbedding"


def register() -> None:
    """Make vLLM build PoolDynamicNTKRotaryEmbedding wherever it builds dynamic NTK.

    Idempotent; leaves another plugin's replacement in place (with a warning)
    rather than fighting over the slot. Models without factor-based dynamic
    NTK never instantiate the class, so they are unaffected.
    """
    from vllm.model_executor.custom_op import CustomOp, op_registry_oot

    from deployments.rope.rotary import PoolDynamicNTKRotaryEmbedding

    current = op_registry_oot.get(STOCK_CLASS)
    if current is PoolDynamicNTKRotaryEmbedding:
        return
    if current is not None:
        logger.warning(
            "internlm_rope: %s is already replaced by %r; not overriding it, so "
            "dynamic NTK models past their native window may be wrong",
            STOCK_CLASS,
            current,
        )
        return
    CustomOp.register_oot(PoolDynamicNTKRotaryEmbedding, name=STOCK_CLASS)
    # register_oot renames the op; keep the stock op name so user settings
    # such as compilation_config.custom_ops=["-rotary_embedding"] still apply.
    PoolDynamicNTKRotaryEmbedding.name = "rotary_embedding"
