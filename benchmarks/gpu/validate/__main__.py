"""GPU validation of the whole stack on one H200, in stages of under 10 minutes.

Each stage starts what it needs (the real cluster through
``cluster.cli.start_cluster``, or stock vLLM), measures through the HTTP API,
and writes ``RESULTS/<stage>.json`` after every measurement, so a stage cut
off by the machine's time limit keeps what it measured. ``summary`` (any
machine) folds the stage files into ``summary.json`` and a PNG.

    python benchmarks/gpu/validate.py serve --results benchmarks/results/gpu
    python benchmarks/gpu/validate.py serve --model internlm3-8b-instruct --results ...

``--model`` picks the model of the checkpoints, serve, stock and correctness
stages (benchmarks/gpu/validated.py: InternLM2.5 by default, whose stage
files keep their names; InternLM3's are prefixed ``internlm3-``).

Stages:
  checkpoints   write the random real-size checkpoints (full and 4-layer)
  serve         profile h200-1gpu[-internlm3] (short + long pool sharing the GPU):
                (a) routing and limits, (c) cold prefill tokens/s at 32k, 128k
                and the long pool's maximum, ingress time, (c2) overhead of our
                path over the engine on 1k-token requests; replica restarts
  overhead      (c2) alone, h200-1gpu's short pool with Serve's direct ingress: our API
                through Serve's proxy, through the ingress replica's own port,
                and the engine, interleaved
  stock         stock vLLM (no plugin) on the same GPU, same engine arguments,
                same prompt sizes: the baseline of (c)
  correctness   (b) next-token logprobs through the router at 8k, 300k, 500k
                tokens vs a plain-PyTorch GPU reference of the same 4-layer
                checkpoint, at the pool's base and at a wrong one
  doc_qa        (d) 128k-token documents, two replicas, per router
  kv_tier       issue 11: questions on GPU-evicted 128k documents, host-RAM
                KV tier off vs on (benchmarks/gpu/kv_tier.py)
  summary       summary.json + doc_qa.png from the stage files

The stack must already be importable (PYTHONPATH=repo:site from the wheel
bundle; nothing is installed from the network).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

OVERHEAD_PROFILE = REPO / "benchmarks" / "profiles" / "overhead-h200.yaml"
DOC_QA_PROFILE = REPO / "benchmarks" / "profiles" / "doc-qa-h200.yaml"
KV_TIER_PROFILE = REPO / "benchmarks" / "profiles" / "kv-tier-h200.yaml"


from benchmarks.gpu.harness import (  # noqa: E402
    MODEL,
    LocalCluster,
    StageLog,
    ensure_checkpoints,
    use_full_checkpoint,
    run_stage,
    stage_parser,
    progress,
    random_ids,
    rotary_in_model,
    server_timing_ms,
    stream_completion,
)
from benchmarks.gpu.overhead import short_overhead  # noqa: E402
from benchmarks.gpu.summary import stage_summary  # noqa: E402
from benchmarks.gpu.validated import VALIDATED_MODELS  # noqa: E402


# --- stage: serve -----------------------------------------------------------------------


def stage_serve(args, log: StageLog) -> None:
    import httpx

    from deployments.tokens import PromptTokenizer

    m = VALIDATED_MODELS[args.model]
    model = m.model
    log.put("checkpoints_s", use_full_checkpoint(args.models, model))
    with LocalCluster(args.serve_profile or m.serve_profile) as cluster:
        log.put("startup_s", round(cluster.startup_s, 1))
        short, long_ = cluster.config.pool(m.short_pool), cluster.config.pool(m.long_pool)
        log.put("pools", {p.name: {"band": list(p.band), "max_model_len": p.engine.max_model_len}
                          for p in cluster.config.pools})
        client = httpx.Client(base_url=cluster.url, timeout=3600)
        log.put("v1_pools", client.get("/v1/pools").json())

        # (a) Routing and limits.
        chat = client.post("/v1/chat/completions", json={
            "model": model, "messages": [{"role": "user", "content": "Name three prime numbers."}],
            "max_tokens": 8})
        routing = [{"case": "short chat", "status": chat.status_code, "pool": chat.headers.get("x-pool"),
                    "replica": chat.headers.get("x-replica"), "expected_pool": short.name}]
        over = client.post("/v1/completions", json={
            "model": model, "prompt": random_ids(long_.max_tokens + 1, seed=1), "max_tokens": 1})
        routing.append({"case": "over the longest band", "status": over.status_code,
                        "error": over.json().get("error"), "expected_status": 413})
        log.put("routing", routing)
        progress(f"routing: {[(r['case'], r['status'], r.get('pool')) for r in routing]}")

        # Warm-up (first-request costs are not prefill).
        stream_completion(client, {"model": model, "prompt": random_ids(1024, seed=2), "max_tokens": 1})

        # (c2) Our path vs the engine, 1k-token prompts, interleaved, each cold.
        if args.overhead_repeats:
            log.put("short_overhead", short_overhead(client, short.name, args.overhead_repeats, model))

        # (c) Cold prefill through the HTTP API, token-id prompts.
        tokenizer = PromptTokenizer(model, cluster.config.models[model])
        for size in args.prefill_sizes or (*m.prefill_sizes, long_.max_tokens - 1):
            ids = random_ids(size, seed=size)
            started_unix = time.time()  # lines the prefill up with device.sh's GPU samples (rope_ab.py)
            result = stream_completion(client, {"model": model, "prompt": ids, "max_tokens": 1})
            timing = server_timing_ms(result.get("server_timing"))
            # The ingress's own work on a text prompt of this size (the same
            # tokenizer object the ingress uses; not part of the id request).
            text = tokenizer.decode(ids)
            t0 = time.perf_counter()
            tokenizer.text_ids(text, add_special_tokens=False)
            tokenize_ms = (time.perf_counter() - t0) * 1000
            row = {"tokens": size, "started_unix": started_unix,
                   **{k: result.get(k) for k in ("status", "ttft_s", "pool", "replica", "prompt_tokens")},
                   "ours_tok_s": size / result["ttft_s"] if result.get("ttft_s") else None,
                   "route_ms": timing.get("route"), "tokenize_ms_text_prompt": tokenize_ms,
                   "server_timing": result.get("server_timing")}
            log.append("prefill", row)
            progress(f"prefill {size:,}: {result.get('status')} {result.get('pool')} "
                     f"TTFT {result.get('ttft_s')} s; tokenize text {tokenize_ms:.0f} ms")
        routing.append({"case": "longest prompt", "status": log.data["prefill"][-1]["status"],
                        "pool": log.data["prefill"][-1]["pool"], "expected_pool": long_.name})
        log.put("routing", routing)
        log.put("replica_restarts", cluster.replica_restarts())


def stage_overhead(args, log: StageLog) -> None:
    """(c2) alone, with Serve's direct ingress on: proxy path, replica's own port, engine."""
    import httpx

    from cluster.direct_ingress import skip_draining_without_balancer

    skip_draining_without_balancer()
    # The overhead profile is InternLM2.5's short pool, whatever --model says.
    log.put("checkpoints_s", use_full_checkpoint(args.models))
    with LocalCluster(args.overhead_profile, ["ingress.direct_ingress=true"]) as cluster:
        log.put("startup_s", round(cluster.startup_s, 1))
        short = cluster.config.pool("il25-short")
        client = httpx.Client(base_url=cluster.url, timeout=3600)
        stream_completion(client, {"model": MODEL, "prompt": random_ids(1024, seed=2), "max_tokens": 1})
        log.put("short_overhead", short_overhead(client, short.name, args.overhead_repeats))
        log.put("replica_restarts", cluster.replica_restarts())


# --- stage: stock -----------------------------------------------------------------------


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


# --- stage: correctness -----------------------------------------------------------------


def pool_base(config, pool) -> float:
    """The rotary base the pool's engine uses: the sequence length comes from
    the same function that configures the engines (deployments/rope/pool.py)."""
    from deployments import rope
    from deployments.rope.ntk import dynamic_ntk_base
    from deployments.rope.pool import NTK_SEQ_LEN_ATTR

    model = config.models[pool.model]
    hf = json.loads((Path(model.path) / "config.json").read_text())
    theta, head_dim = float(hf["rope_theta"]), hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"]
    overrides = rope.engine_kwargs_for_pool(
        native_context=model.native_context, rope_scaling=model.rope_scaling,
        max_model_len=pool.engine.max_model_len, band_max_tokens=pool.max_tokens,
        validated_len=model.context_limit,
    ).get("hf_overrides", {})
    seq = overrides.get(NTK_SEQ_LEN_ATTR)
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
            row = {"tokens": size, "pool": response.headers.get("x-pool"), "seconds": elapsed, "top_logprobs": logprobs}
            engine_rows.append(row)
            log.append("engine", row)
            progress(f"engine {size:,} tokens via {row['pool']}: {elapsed:.1f} s")
        bases = {p.name: pool_base(config, p) for p in config.pools}
        model_path = config.models[m.model].path
    import torch

    from benchmarks.gpu.reference import InternLMReference

    reference = InternLMReference(model_path, device="cuda" if torch.cuda.is_available() else "cpu")
    stock_base = float(reference.config["rope_theta"])
    for row in engine_rows:
        ids = random_ids(row["tokens"], seed=row["tokens"] + 11)
        base = bases[row["pool"]]
        # Wrong: stock vLLM's base past the window; the long pool's inside it.
        wrong = stock_base if base != stock_base else max(bases.values())
        t0 = time.perf_counter()
        right_lp = reference.next_token_logprobs(ids, base)
        wrong_lp = reference.next_token_logprobs(ids, wrong)
        tokens = torch.tensor(list(row["top_logprobs"].keys()))
        engine_lp = torch.tensor(list(row["top_logprobs"].values()))
        result = {
            "tokens": row["tokens"], "pool": row["pool"], "base": base, "wrong_base": wrong,
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


# --- stage: doc_qa ----------------------------------------------------------------------


def stage_doc_qa(args, log: StageLog) -> None:
    from benchmarks import doc_qa

    os.environ["LONGCTX_GPU_MODELS"] = str(args.models)
    ensure_checkpoints(args.models, reduced=False)
    bench_args = argparse.Namespace(
        documents=args.documents, questions=args.questions, document_tokens=args.document_tokens,
        concurrency=2, data_dir="/tmp/longctx-data/doc-qa", profile=args.doc_qa_profile)
    rows = doc_qa.run(bench_args, args.routers.split(","),
                      on_result=lambda row: log.append("results", row))
    log.put("done", len(rows))


# --- stage: kv_tier ---------------------------------------------------------------------


def stage_kv_tier(args, log: StageLog) -> None:
    from benchmarks import doc_qa
    from benchmarks.gpu import kv_tier
    from cluster.config import load_config
    from deployments.tokens import PromptTokenizer

    os.environ["LONGCTX_GPU_MODELS"] = str(args.models)
    ensure_checkpoints(args.models, reduced=False)
    config = load_config(args.kv_tier_profile)
    model = kv_tier.MODELS["on"]
    tokenizer = PromptTokenizer(model, config.models[model])
    progress(f"writing {args.kv_tier_documents} documents of {args.document_tokens} tokens ...")
    texts = [doc_qa.document_text(100 + i, args.document_tokens, tokenizer) for i in range(args.kv_tier_documents)]
    measured = kv_tier.run(args, log, args.kv_tier_profile, texts)
    summary = kv_tier.headline(config, measured)
    for key, value in summary.items():
        log.put(key, value)
    kv_tier.plot(summary, args.results / "kv_tier.png")
    progress(f"evicted TTFT: tier off {summary['evicted_ttft_s_tier_off']:.2f} s, tier on "
             f"{summary['evicted_ttft_s_tier_on']:.2f} s; cold {summary['cold_ttft_s']:.2f} s")


STAGES = {
    "checkpoints": lambda args, log: log.put("checkpoints_s", ensure_checkpoints(args.models, model=args.model)),
    "serve": stage_serve,
    "overhead": stage_overhead,
    "stock": stage_stock,
    "correctness": stage_correctness,
    "doc_qa": stage_doc_qa,
    "kv_tier": stage_kv_tier,
    "summary": stage_summary,
}


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__, STAGES)
    parser.add_argument("--prefill-sizes", type=int, nargs="*", default=None)
    parser.add_argument("--model", choices=list(VALIDATED_MODELS), default=MODEL,
                        help="the model of the checkpoints, serve, stock and correctness stages")
    parser.add_argument("--overhead-repeats", type=int, default=30, help="c2 rounds (serve: 0 skips c2)")
    parser.add_argument("--correctness-sizes", type=int, nargs="*", default=None)
    parser.add_argument("--with-rope-plugin", action="store_true", help="stock: keep our RoPE plugin (diagnosis)")
    parser.add_argument("--stock-hf-overrides", default=None, help="stock: hf_overrides as JSON (diagnosis)")
    parser.add_argument("--routers", default="affinity,power_of_two,prefix_cache")
    parser.add_argument("--documents", type=int, default=4)
    parser.add_argument("--questions", type=int, default=3)
    parser.add_argument("--document-tokens", type=int, default=128_000)
    # Other profiles with the same pool names (default: the model's): CPU dry runs of this script.
    parser.add_argument("--serve-profile", type=Path, default=None)
    parser.add_argument("--overhead-profile", type=Path, default=OVERHEAD_PROFILE)
    parser.add_argument("--correctness-profile", type=Path, default=None)
    parser.add_argument("--doc-qa-profile", type=Path, default=DOC_QA_PROFILE)
    parser.add_argument("--kv-tier-profile", type=Path, default=KV_TIER_PROFILE)
    parser.add_argument("--kv-tier-documents", type=int, default=4, help="working set, in documents")
    parser.add_argument("--kv-tier-rounds", type=int, default=1, help="evicted + GPU-resident rounds")
    parser.add_argument("--kv-tier-order", type=lambda s: s.split(","), default=["off", "on"])
    args = parser.parse_args(argv)
    return run_stage(STAGES, args, "benchmarks/gpu/validate.py", argv, VALIDATED_MODELS[args.model].results_prefix)


if __name__ == "__main__":
    sys.exit(main())
