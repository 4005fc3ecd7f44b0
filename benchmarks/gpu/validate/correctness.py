"""Stage ``correctness``: (b) next-token logprobs through the router against a plain-PyTorch reference.

At 8k (inside the native window: the bf16 noise floor), 300k and 500k
tokens on the 4-layer real-width checkpoint, the engine's top logprobs are
compared with benchmarks/gpu/logprob_reference.py at the pool's rotary base,
and at a wrong one, to show the comparison can fail. tp4_1m's correctness
stage runs this one on its own profile.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from benchmarks.common.local_cluster import LocalCluster
from benchmarks.common.progress import progress
from benchmarks.common.prompts import random_ids
from benchmarks.gpu.checkpoints import ensure_checkpoints
from benchmarks.gpu.stage_log import StageLog
from benchmarks.gpu.validated_models import VALIDATED_MODELS


def base_for_seq_len(config, pool, seq_len: int | None) -> float:
    """The rotary base for a sequence of ``seq_len`` tokens (the ingress's
    x-rope-seq-len: the L it sent the engine for this prompt); the pool's
    base when the ingress sent none (a pool inside the native window)."""
    from deployments.rope.ntk import dynamic_ntk_base

    if seq_len is None:
        return pool_base(config, pool)
    model = config.models[pool.model]
    hf = json.loads((Path(model.path) / "config.json").read_text())
    theta, head_dim = float(hf["rope_theta"]), hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"]
    if seq_len <= model.native_context:
        return theta
    return dynamic_ntk_base(theta, float(model.rope_scaling["factor"]), model.native_context, seq_len, head_dim)


def pool_base(config, pool) -> float:
    """The rotary base the pool's engine uses: the sequence length comes from
    the same function that configures the engines (deployments/engines.py)."""
    from deployments.engines import rope_engine_kwargs
    from deployments.rope.ntk import dynamic_ntk_base
    from deployments.rope.pool import NTK_SEQ_LEN_ATTR

    model = config.models[pool.model]
    hf = json.loads((Path(model.path) / "config.json").read_text())
    theta, head_dim = float(hf["rope_theta"]), hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"]
    seq = rope_engine_kwargs(config, pool).get("hf_overrides", {}).get(NTK_SEQ_LEN_ATTR)
    if seq is None or seq <= model.native_context:
        return theta
    return dynamic_ntk_base(theta, float(model.rope_scaling["factor"]), model.native_context, seq, head_dim)


def stage_correctness(args, log: StageLog) -> None:
    import httpx

    m = VALIDATED_MODELS[args.model]
    os.environ["LONGCTX_GPU_MODELS"] = str(args.models)
    ensure_checkpoints(args.models, model=m.model, full=False)
    sizes = args.correctness_sizes or m.correctness_sizes
    engine_rows = []
    with LocalCluster(args.correctness_profile or m.correctness_profile) as cluster:
        config = cluster.config
        client = httpx.Client(base_url=cluster.url, timeout=3600)
        for size in sizes:
            ids = random_ids(size, seed=size + 11)
            t0 = time.perf_counter()
            response = client.post("/v1/completions", json={
                "model": m.model, "prompt": ids, "max_tokens": 1, "temperature": 0, "logprobs": 20,
                "return_tokens_as_token_ids": True})
            elapsed = time.perf_counter() - t0
            if response.status_code != 200:
                log.append("engine", {"tokens": size, "status": response.status_code, "error": response.text[:500]})
                continue
            top = response.json()["choices"][0]["logprobs"]["top_logprobs"][0]
            logprobs = {int(k.split(":", 1)[1]): v for k, v in top.items()}
            seq_len = response.headers.get("x-rope-seq-len", "-")
            row = {"tokens": size, "pool": response.headers.get("x-pool"), "seconds": elapsed, "top_logprobs": logprobs,
                   "rope_seq_len": None if seq_len == "-" else int(seq_len),
                   "rope_base_ratio": response.headers.get("x-rope-base-ratio")}
            engine_rows.append(row)
            log.append("engine", row)
            progress(f"engine {size:,} tokens via {row['pool']}: {elapsed:.1f} s")
        bases = {p.name: pool_base(config, p) for p in config.pools}
        # The base each prompt was rotated with: its pool's rope_base mode
        # (deployments/routing/rope_base.py) picked L, and the ingress said which.
        for row in engine_rows:
            row["base"] = base_for_seq_len(config, config.pool(row["pool"]), row["rope_seq_len"])
        model_path = config.models[m.model].path
    import torch

    from benchmarks.gpu.logprob_reference import InternLMReference

    reference = InternLMReference(model_path, device="cuda" if torch.cuda.is_available() else "cpu")
    stock_base = float(reference.config["rope_theta"])
    for row in engine_rows:
        ids = random_ids(row["tokens"], seed=row["tokens"] + 11)
        base = row["base"]
        # Wrong: the pool-wide base (band maximum) where the prompt got another,
        # else stock vLLM's base past the window; the long pool's inside it.
        if base != bases[row["pool"]]:
            wrong = bases[row["pool"]]
        else:
            wrong = stock_base if base != stock_base else max(bases.values())
        t0 = time.perf_counter()
        right_lp = reference.next_token_logprobs(ids, base)
        wrong_lp = reference.next_token_logprobs(ids, wrong)
        tokens = torch.tensor(list(row["top_logprobs"].keys()))
        engine_lp = torch.tensor(list(row["top_logprobs"].values()))
        result = {
            "tokens": row["tokens"], "pool": row["pool"], "rope_seq_len": row["rope_seq_len"],
            "rope_base_ratio": row["rope_base_ratio"], "base": base, "wrong_base": wrong,
            "max_abs_diff": (engine_lp - right_lp[tokens].cpu()).abs().max().item(),
            "wrong_base_diff": (engine_lp - wrong_lp[tokens].cpu()).abs().max().item(),
            "reference_top1": int(right_lp.argmax()), "engine_top1": int(max(row["top_logprobs"], key=row["top_logprobs"].get)),
            "reference_s": time.perf_counter() - t0,
        }
        log.append("agreement", result)
        progress(f"{row['tokens']:,}: diff {result['max_abs_diff']:.4f} at the pool's base, "
                 f"{result['wrong_base_diff']:.3f} at a wrong base")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
