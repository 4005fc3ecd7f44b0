"""Stage ``stock``: stock vLLM (no plugin) on the same GPU, engine arguments and prompt sizes: the baseline of (c).

``--with-rope-plugin`` keeps our RoPE plugin (the stock engine with our rotary
class, which tells the rotary's cost apart from the stack's) and
``--stock-hf-overrides`` gives stock vLLM another rope: diagnoses of
InternLM3's prefill gap (rope_ab.py).
"""

from __future__ import annotations

import json
import os
import time

from benchmarks.common.progress import progress
from benchmarks.common.prompts import random_ids
from benchmarks.gpu.checkpoints import use_full_checkpoint
from benchmarks.gpu.stage_log import StageLog
from benchmarks.gpu.validated_models import VALIDATED_MODELS


def rotary_in_model(model) -> dict:
    """The first rotary embedding of a loaded vLLM model: its class and cos/sin cache rows.

    Runs inside the engine's worker (``LLM.apply_model``): which class a
    config override or plugin really gave the engine, and how many positions
    its cache covers, is what the stock stage's diagnosis rests on.
    """
    for module in model.modules():
        cache = getattr(module, "cos_sin_cache", None)
        if cache is not None:
            return {"class": type(module).__name__, "cache_rows": int(cache.shape[0]),
                    "base": float(getattr(module, "ntk_base", getattr(module, "base", 0.0)))}
    return {"class": None}


def stage_stock(args, log: StageLog) -> None:
    # Stock: no general plugin (ours is one), same engine arguments as the pools.
    # --with-rope-plugin keeps our RoPE plugin: the stock engine with our
    # rotary class, which tells the rotary's cost apart from the stack's.
    if not args.with_rope_plugin:
        os.environ["VLLM_PLUGINS"] = "none"
    log.put("rope_plugin", args.with_rope_plugin)
    os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")
    from cluster.config import load_config

    m = VALIDATED_MODELS[args.model]
    use_full_checkpoint(args.models, m.model)
    config = load_config(args.serve_profile or m.serve_profile)
    long_ = config.pool(m.long_pool)
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    engine_args = {**long_.engine.to_engine_kwargs(), "gpu_memory_utilization": 0.9}
    if args.stock_hf_overrides:
        # Diagnosis: e.g. {"rope_scaling": {"rope_type": "linear", "factor": 6.0}} gives stock vLLM a
        # cos/sin cache covering every position, so it computes on real rotary values past the window.
        engine_args["hf_overrides"] = json.loads(args.stock_hf_overrides)
    log.put("engine_args", engine_args)
    # apply_model sends a function to the engine's worker, which needs pickled callables.
    os.environ.setdefault("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")
    started = time.perf_counter()
    llm = LLM(model=config.models[m.model].path, trust_remote_code=True, **engine_args)
    log.put("startup_s", round(time.perf_counter() - started, 1))
    try:
        log.put("rotary", llm.apply_model(rotary_in_model)[0])
    except Exception as exc:  # noqa: BLE001 - a diagnosis, not the measurement
        log.put("rotary", {"error": f"{type(exc).__name__}: {exc}"[:300]})
    params = SamplingParams(max_tokens=1, temperature=0)
    llm.generate([TokensPrompt(prompt_token_ids=random_ids(1024, seed=3))], params, use_tqdm=False)
    for size in args.prefill_sizes or (*m.prefill_sizes, long_.max_tokens - 1):
        ids = random_ids(size, seed=size + 7)
        started_unix = time.time()
        t0 = time.perf_counter()
        llm.generate([TokensPrompt(prompt_token_ids=ids)], params, use_tqdm=False)
        elapsed = time.perf_counter() - t0
        log.append("prefill", {"tokens": size, "started_unix": started_unix, "stock_s": elapsed,
                                "stock_tok_s": size / elapsed})
        progress(f"stock prefill {size:,}: {elapsed:.2f} s")
