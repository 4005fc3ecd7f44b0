"""Carries each request's rotary length from its sampling params to the rotary layers.

A model's forward sees positions and hidden states, never the request a token
belongs to, so the per-request ``L`` (``vllm_xargs`` key
``ROPE_SEQ_LEN_XARG``, i.e. ``SamplingParams.extra_args``) cannot reach the
rotary layer through the model. This hook wraps three methods of vLLM's model
runners, the one place that knows both the requests and the token layout of
each step:

* ``load_model``: find the model's ``RequestDynamicNTKRotaryEmbedding``
  modules and give the runner a ``RunnerRope`` (none: the hook stays idle);
* ``execute_model``: record ``L`` of each new request (from the scheduler
  output's new-request data, which carries the sampling params), forget
  finished ones;
* the input preparation (V1 runner and its CPU subclass: ``_prepare_inputs``;
  V2 runner: ``prepare_inputs``): with the batch's request order and tokens
  per request, fill the layers' per-token row index and inverse-frequency
  table in place, before the forward and on the forward's stream.

Every step, chunked prefill and decode alike, a request's tokens use its one
``L``: its KV cache was rotated with that base, so decode keeps it (as
LMDeploy TurboMind fixes a request's base at its start).

The wrappers replace methods on vLLM's runner classes, process-wide, the way
vLLM's own plugins patch classes (CustomOp.register_oot does the same for the
rotary class): a runner is constructed by vLLM's worker, after plugins load,
with no way to pass it anything. The per-request state itself lives on each
runner instance, not in the process. Where vLLM's internals are not what the
wrappers expect, ``install`` raises, so the engine fails at start rather than
serving wrong bases.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
from typing import Any

logger = logging.getLogger(__name__)

# Attribute on a runner instance holding its RunnerRope (or None).
RUNNER_ATTR = "_longctx_rope"
# Marks a wrapped method, so install() is idempotent.
_WRAPPED = "__longctx_rope_wrapped__"


def seq_len_from_extra_args(extra_args: dict[str, Any] | None) -> int | None:
    """The request's ``L``, or None when it carries none (or an unusable one).

    The ingress sets the key and validates it; an engine must not fail on a
    bad value, so one is logged and the pool's base applies.
    """
    from deployments.rope import ROPE_SEQ_LEN_XARG

    if not extra_args or ROPE_SEQ_LEN_XARG not in extra_args:
        return None
    value = extra_args[ROPE_SEQ_LEN_XARG]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        logger.warning("ignoring %s=%r: not a positive integer; the pool's base applies", ROPE_SEQ_LEN_XARG, value)
        return None
    return value


class RunnerRope:
    """One runner's rotary layers and the ``L`` of each request it serves."""

    def __init__(self, layers: list) -> None:
        self.layers = layers
        self.seq_len_by_req: dict[str, int] = {}

    def track(self, scheduler_output) -> None:
        for req_id in scheduler_output.finished_req_ids:
            self.seq_len_by_req.pop(req_id, None)
        for new_req in scheduler_output.scheduled_new_reqs:
            params = new_req.sampling_params
            seq_len = seq_len_from_extra_args(params.extra_args if params is not None else None)
            if seq_len is None:
                self.seq_len_by_req.pop(new_req.req_id, None)
            else:
                self.seq_len_by_req[new_req.req_id] = seq_len

    def load(self, req_ids, num_scheduled_tokens) -> None:
        seq_lens = [self.seq_len_by_req.get(req_id) for req_id in req_ids]
        for layer in self.layers:
            layer.load_batch(seq_lens, num_scheduled_tokens)


def _attach(runner) -> None:
    from deployments.rope.rotary import RequestDynamicNTKRotaryEmbedding

    model = runner.get_model()
    layers = [m for m in model.modules() if isinstance(m, RequestDynamicNTKRotaryEmbedding)]
    if not layers:
        setattr(runner, RUNNER_ATTR, None)
        return
    max_tokens = getattr(runner, "max_num_tokens", None)
    max_reqs = getattr(runner, "max_num_reqs", None)
    for layer in layers:
        if max_tokens is not None and layer.token_rows.numel() < max_tokens:
            raise RuntimeError(
                f"internlm_rope: rotary layer sized for {layer.token_rows.numel()} tokens a step, "
                f"the runner schedules up to {max_tokens}"
            )
        if max_reqs is not None and layer.inv_freq_rows.shape[0] < max_reqs + 1:
            raise RuntimeError(
                f"internlm_rope: rotary layer has rows for {layer.inv_freq_rows.shape[0] - 1} requests, "
                f"the runner batches up to {max_reqs}"
            )
    for attr in ("adaptive_verification", "pcp_manager"):
        if getattr(runner, attr, None) is not None:
            # Both re-lay tokens on the GPU after input preparation.
            raise RuntimeError(f"internlm_rope: per-request rotary bases do not support vLLM's {attr}")
    if getattr(getattr(runner, "parallel_config", None), "use_ubatching", False):
        # Micro-batches hand the rotary layer a slice of the step's tokens,
        # whose rows would be read from the step's start.
        raise RuntimeError("internlm_rope: per-request rotary bases do not support vLLM's micro-batching (DBO)")
    setattr(runner, RUNNER_ATTR, RunnerRope(layers))


def _require(cls, name: str, params: tuple[str, ...]) -> None:
    method = cls.__dict__.get(name)
    if method is None:
        raise RuntimeError(f"internlm_rope: {cls.__module__}.{cls.__qualname__}.{name} is missing")
    found = tuple(inspect.signature(method).parameters)[: len(params)]
    if found != params:
        raise RuntimeError(
            f"internlm_rope: {cls.__qualname__}.{name}{found} is not the expected {params}; "
            "this vLLM's model runner differs from the one deployments/rope/runner_hook.py supports"
        )


def _wrap(cls, name: str, before=None, after=None) -> None:
    original = cls.__dict__[name]
    if getattr(original, _WRAPPED, False):
        return

    @functools.wraps(original)
    def wrapper(self, *args, **kwargs):
        if before is not None:
            before(self, *args, **kwargs)
        result = original(self, *args, **kwargs)
        if after is not None:
            after(self)
        return result

    setattr(wrapper, _WRAPPED, True)
    setattr(cls, name, wrapper)


def _rope(runner) -> RunnerRope | None:
    return getattr(runner, RUNNER_ATTR, None)


def _track(runner, scheduler_output, *args, **kwargs) -> None:
    rope = _rope(runner)
    if rope is not None:
        rope.track(scheduler_output)


def _load_v1(runner, scheduler_output, num_scheduled_tokens, *args, **kwargs) -> None:
    rope = _rope(runner)
    if rope is not None:
        num_reqs = runner.input_batch.num_reqs
        rope.load(runner.input_batch.req_ids[:num_reqs], num_scheduled_tokens)


def _load_v2(runner, scheduler_output, batch_req_state, *args, **kwargs) -> None:
    rope = _rope(runner)
    if rope is not None:
        rope.load(batch_req_state.req_ids, batch_req_state.num_scheduled_tokens)


def _import(module: str, name: str):
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None  # this vLLM has no such runner
        raise


def _refuse(problem: str):
    """A load_model hook that fails the engine at start with ``problem``."""

    def refuse(runner) -> None:
        raise RuntimeError(problem)

    return refuse


def _check(cls, layout: str, layout_params: tuple[str, ...]) -> str | None:
    """What keeps the hook from working on this runner class, or None."""
    try:
        _require(cls, "execute_model", ("self", "scheduler_output"))
        _require(cls, layout, layout_params)
    except RuntimeError as exc:
        return str(exc)
    return None


# The V2 runner's input preparation as the hook reads it (vLLM 0.29). vLLM
# 0.26's V2 runner takes a BatchExecutionDescriptor there instead, and its
# V1 runner is the layout above: engines there run the V1 runner
# (v2_runner_problem, deployments/engines.py).
V2_LAYOUT = ("self", "scheduler_output", "batch_req_state")


def v2_runner_problem() -> str | None:
    """What keeps the hook from following this vLLM's V2 GPU model runner, or None
    (also when this vLLM has none). Seen on the GPU test machine: vLLM 0.26's
    ``prepare_inputs(self, scheduler_output, batch_desc)`` failed every engine."""
    v2 = _import("vllm.v1.worker.gpu.model_runner", "GPUModelRunner")
    return None if v2 is None else _check(v2, "prepare_inputs", V2_LAYOUT)


def install() -> None:
    """Wrap vLLM's model runners.

    A runner class whose internals differ gets a load_model that raises, so
    only an engine that really uses it fails, at start (a vLLM may ship a
    V2 runner the hook does not know while its engines run the V1 one).
    """
    from vllm.platforms import current_platform

    v1 = _import("vllm.v1.worker.gpu_model_runner", "GPUModelRunner")
    if v1 is None:
        raise RuntimeError("internlm_rope: vLLM's V1 GPUModelRunner is missing")
    v1_problem = _check(v1, "_prepare_inputs", ("self", "scheduler_output", "num_scheduled_tokens"))
    loaders = [v1]
    if current_platform.is_cpu():
        cpu = _import("vllm.v1.worker.cpu_model_runner", "CPUModelRunner")
        if cpu is None or not issubclass(cpu, v1):
            raise RuntimeError("internlm_rope: vLLM's CPUModelRunner is not a V1 GPUModelRunner")
        for name in ("execute_model", "_prepare_inputs"):
            if name in cpu.__dict__:
                v1_problem = v1_problem or f"internlm_rope: CPUModelRunner overrides {name}"
        loaders.append(cpu)
    if v1_problem is None:
        _wrap(v1, "execute_model", before=_track)
        _wrap(v1, "_prepare_inputs", before=_load_v1)
    for cls in loaders:
        _require(cls, "load_model", ("self",))
        _wrap(cls, "load_model", after=_attach if v1_problem is None else _refuse(v1_problem))
    v2 = _import("vllm.v1.worker.gpu.model_runner", "GPUModelRunner")
    if v2 is not None:
        v2_problem = _check(v2, "prepare_inputs", V2_LAYOUT)
        if v2_problem is None:
            _wrap(v2, "execute_model", before=_track)
            _wrap(v2, "prepare_inputs", before=_load_v2)
        _require(v2, "load_model", ("self",))
        _wrap(v2, "load_model", after=_attach if v2_problem is None else _refuse(v2_problem))
