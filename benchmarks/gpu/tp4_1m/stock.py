"""Stage ``stock``: stock vLLM (no plugins) with the long pool's engine arguments at TP=4, the same prompts."""

from __future__ import annotations

import os
import time

from benchmarks.common.progress import progress
from benchmarks.common.prompts import random_ids
from benchmarks.gpu.checkpoints import use_full_checkpoint
from benchmarks.gpu.stage_log import StageLog
from benchmarks.gpu.tp4_1m.profile import LONG, load_profile, prompt_ids


def stock_engine_kwargs(config, pool) -> dict:
    """The pool's engine arguments as Serve passes them (deployments/engines.py), for LLM()."""
    from deployments.engines import rope_engine_kwargs

    kwargs = {**pool.engine.to_engine_kwargs(), "trust_remote_code": config.models[pool.model].trust_remote_code}
    # model_max_length lets vLLM start past its derived 655,360; without the
    # plugin, dynamic_ntk_seq_len is an unread attribute: rotation stays stock.
    overrides = rope_engine_kwargs(config, pool).get("hf_overrides")
    if overrides:
        kwargs["hf_overrides"] = {**kwargs.get("hf_overrides", {}), **overrides}
    if config.device == "cpu":
        kwargs.pop("gpu_memory_utilization", None)
    return kwargs


def stage_stock(args, log: StageLog) -> None:
    use_full_checkpoint(args.models)
    config = load_profile(args)
    long_ = config.pool(LONG)
    # The engines' environment (NCCL_NVLS_ENABLE=0, ...), then no plugins: stock.
    os.environ.update({**config.engine_env, **long_.env, "VLLM_PLUGINS": "none"})
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    engine_args = stock_engine_kwargs(config, long_)
    log.put("engine_args", engine_args)
    started = time.perf_counter()
    llm = LLM(model=config.models[long_.model].path, **engine_args)
    log.put("startup_s", round(time.perf_counter() - started, 1))
    params = SamplingParams(max_tokens=1, temperature=0)
    llm.generate([TokensPrompt(prompt_token_ids=random_ids(1024, seed=3))], params, use_tqdm=False)
    # The 1M prompt first: the figure the issue asks for, if the stage is cut short.
    for size in sorted(args.sizes, reverse=True):
        progress(f"stock prefill {size:,} tokens ...")
        t0 = time.perf_counter()
        llm.generate([TokensPrompt(prompt_token_ids=prompt_ids(size))], params, use_tqdm=False)
        elapsed = time.perf_counter() - t0
        log.append("prefill", {"tokens": size, "stock_s": elapsed, "stock_tok_s": size / elapsed})
        progress(f"stock prefill {size:,}: {elapsed:.2f} s")
