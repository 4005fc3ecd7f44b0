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
    """Make vLLM build RequestDynamicNTKRotaryEmbedding wherever it builds dynamic
    NTK, and feed it each request's rotary length (runner_hook.install).

    Idempotent; leaves another plugin's replacement in place (with a warning)
    rather than fighting over the slot. Models without factor-based dynamic
    NTK never instantiate the class, so they are unaffected (the runner hook
    finds no layer to feed and stays idle). Raises where vLLM's model runner
    is not what the hook expects: the engine fails at start.
    """
    from vllm.model_executor.custom_op import CustomOp, op_registry_oot

    from deployments.rope import runner_hook
    from deployments.rope.rotary import RequestDynamicNTKRotaryEmbedding

    runner_hook.install()
    current = op_registry_oot.get(STOCK_CLASS)
    if current is RequestDynamicNTKRotaryEmbedding:
        return
    if current is not None:
        logger.warning(
            "internlm_rope: %s is already replaced by %r; not overriding it, so "
            "dynamic NTK models past their native window may be wrong",
            STOCK_CLASS,
            current,
        )
        return
    CustomOp.register_oot(RequestDynamicNTKRotaryEmbedding, name=STOCK_CLASS)
    # register_oot renames the op; keep the stock op name so user settings
    # such as compilation_config.custom_ops=["-rotary_embedding"] still apply.
    RequestDynamicNTKRotaryEmbedding.name = "rotary_embedding"
