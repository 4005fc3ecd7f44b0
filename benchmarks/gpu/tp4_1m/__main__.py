"""Issue 12: 1,048,576 tokens on a TP=4 group of one 4xH200 host, in stages of under 10 minutes.

Same shape as validate.py (whose harness it reuses): each stage starts what it
needs, measures, and rewrites ``RESULTS/tp4_<stage>.json`` after every
measurement, so a stage cut off by the machine's limit keeps what it has.

    python benchmarks/gpu/tp4_1m.py ours --results OUT     # (device.sh tp4 ours)

Stages:
  checkpoints   the random real-size checkpoints (full and 4-layer)
  ours          profile h200x4-1m through the real stack (HTTP -> ingress ->
                router -> il25-long, a TP=4 engine): streaming TTFT of token-id
                prompts of 524,288 and 1,048,000 tokens (max_tokens 1); decode
                ms/token at 1M from one streamed 64-token follow-up on the same prompt
                (its prefill is a prefix-cache hit); the KV capacity vLLM
                reports for the long pool vs the planner's prediction
  stock         stock vLLM (VLLM_PLUGINS=none), the long pool's engine
                arguments at TP=4, TTFT of the same prompts
  correctness   next-token logprobs through the router at 8,192 (noise floor,
                short pool) and 1,048,000 tokens on the 4-layer real-width
                checkpoint at TP=4 vs benchmarks/gpu/reference.py on one GPU,
                at the pool's base and a wrong one (validate.py's stage)
  summary       RESULTS/tp4_*.json -> --out (benchmarks/results/gpu/tp4_1m.json)

CPU dry run (small sizes, the cpu-demo profile, whose il25-long is TP=2):
    VALIDATE_SKIP_CHECKPOINTS=1 python benchmarks/gpu/tp4_1m.py ours --results /tmp/tp4 \\
        --profile cpu-demo --sizes 6000 10000 --decode-tokens 8
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.gpu.harness import (  # noqa: E402
    FULL_CHECKPOINT,
    MODEL,
    REDUCED_LAYERS,
    LocalCluster,
    StageLog,
    ensure_checkpoints,
    progress,
    run_stage,
    stage_parser,
    random_ids,
    use_full_checkpoint,
    versions,
)

PROFILE = REPO / "deployments" / "h200x4-1m.yaml"
SUMMARY = REPO / "benchmarks" / "results" / "gpu" / "tp4_1m.json"
LONG, SHORT = "il25-long", "il25-short"
# The prompt sizes: half the window, and 1M less room for a few output tokens.
SIZES = (524_288, 1_048_000)
KV_LOG = re.compile(r"GPU KV cache size: ([\d,]+) tokens, Maximum concurrency for ([\d,]+) tokens")


def prompt_ids(size: int) -> list[int]:
    """The prompt of ``size`` tokens; ours and stock send the same one."""
    return random_ids(size, seed=size + 7)


def load_profile(args):
    from cluster.config import load_config, profile_path

    return load_config(profile_path(str(args.profile)), args.set)


# --- stage: ours ------------------------------------------------------------------------


def stream_tokens(client, body: dict) -> dict:
    """Stream a completion; arrival time of every chunk with tokens, and the token count.

    Ray Serve LLM batches streamed chunks (every ~50 ms by default), so one
    chunk may carry several tokens: decode time per token is the span from
    the first to the last chunk over the tokens after the first.
    """
    started = time.perf_counter()
    arrivals: list[float] = []
    tokens = None
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    with client.stream("POST", "/v1/completions", json=body) as response:
        if response.status_code != 200:
            return {"status": response.status_code, "error": response.read().decode()[:500]}
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            now = time.perf_counter() - started
            chunk = json.loads(line[len("data: "):])
            if chunk.get("choices"):
                arrivals.append(now)
            if chunk.get("usage"):
                tokens = chunk["usage"].get("completion_tokens")
        headers = response.headers
    gaps = [(b - a) * 1000 for a, b in zip(arrivals, arrivals[1:])]
    n = tokens or len(arrivals)
    return {
        "status": 200, "ttft_s": arrivals[0] if arrivals else None, "total_s": time.perf_counter() - started,
        "chunks": len(arrivals), "completion_tokens": tokens, "gaps_ms": gaps,
        "ms_per_token": (arrivals[-1] - arrivals[0]) * 1000 / (n - 1) if n > 1 and len(arrivals) > 1 else None,
        "pool": headers.get("x-pool"), "replica": headers.get("x-replica"),
        "prompt_tokens": int(headers.get("x-prompt-tokens", 0)), "server_timing": headers.get("server-timing"),
    }


def kv_tokens_from_logs(logs_dir: Path, max_model_len: int) -> list[int]:
    """vLLM's "GPU KV cache size: N tokens" lines of engines with this max_model_len."""
    found = []
    for path in sorted(logs_dir.rglob("*")):
        if not path.is_file() or path.suffix not in (".out", ".err", ".log"):
            continue
        for match in KV_LOG.finditer(path.read_text(errors="replace")):
            if int(match.group(2).replace(",", "")) == max_model_len:
                found.append(int(match.group(1).replace(",", "")))
    return found


def kv_tokens_from_metrics(text: str) -> list[dict]:
    """vLLM's cache_config_info gauge as Ray exports it (ray_vllm_cache_config_info)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("#") or "cache_config_info" not in line:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        if labels.get("num_gpu_blocks", "None") in ("None", ""):
            continue
        rows.append({"num_gpu_blocks": int(labels["num_gpu_blocks"]), "block_size": int(labels["block_size"]),
                     "tokens": int(labels["num_gpu_blocks"]) * int(labels["block_size"]),
                     "gpu_memory_utilization": labels.get("gpu_memory_utilization")})
    return rows


def stage_ours(args, log: StageLog) -> None:
    import httpx

    from cluster.planner import plan_pool

    log.put("checkpoints_s", use_full_checkpoint(args.models))
    with LocalCluster(Path(args.profile), args.set) as cluster:
        config = cluster.config
        long_ = config.pool(LONG)
        log.put("startup_s", round(cluster.startup_s, 1))
        log.put("pools", {p.name: {"band": list(p.band), "tp": p.engine.tensor_parallel_size,
                                   "max_model_len": p.engine.max_model_len} for p in config.pools})
        plan = plan_pool(config, long_)
        log.put("kv_tokens_planner", plan.max_tokens)
        log.put("plan", plan.model_dump(mode="json"))
        client = httpx.Client(base_url=cluster.url, timeout=7200)
        log.put("v1_pools", client.get("/v1/pools").json())

        # Routing: a chat to the short pool; one token over the long band: 413.
        chat = client.post("/v1/chat/completions", json={
            "model": MODEL, "messages": [{"role": "user", "content": "Name three prime numbers."}],
            "max_tokens": 8})
        over = client.post("/v1/completions", json={
            "model": MODEL, "prompt": random_ids(long_.max_tokens + 1, seed=1), "max_tokens": 1})
        log.put("routing", [
            {"case": "short chat", "status": chat.status_code, "pool": chat.headers.get("x-pool"),
             "expected_pool": SHORT},
            {"case": "over the longest band", "status": over.status_code, "expected_status": 413,
             "error": over.json().get("error") if over.status_code != 200 else None},
        ])
        progress(f"routing: chat {chat.status_code} via {chat.headers.get('x-pool')}, over the band {over.status_code}")

        # TTFT, cold (each prompt new to the cache), ascending: the first is the warm-up of the group.
        for size in args.sizes:
            progress(f"prefill {size:,} tokens ...")
            result = stream_tokens(client, {"model": MODEL, "prompt": prompt_ids(size), "max_tokens": 1})
            row = {"tokens": size, **{k: result.get(k) for k in (
                "status", "ttft_s", "pool", "replica", "prompt_tokens", "server_timing", "error")}}
            row["tok_s"] = size / result["ttft_s"] if result.get("ttft_s") else None
            log.append("prefill", row)
            progress(f"prefill {size:,}: {row['status']} via {row['pool']}, TTFT {row['ttft_s']} s")

        # Decode at the longest size: the same prompt again (a prefix-cache hit), n tokens streamed.
        size = max(args.sizes)
        result = stream_tokens(client, {"model": MODEL, "prompt": prompt_ids(size), "max_tokens": args.decode_tokens,
                                        "ignore_eos": True, "temperature": 0})
        gaps = result.get("gaps_ms") or []
        log.put("decode", {
            "prompt_tokens": size, "max_tokens": args.decode_tokens, "status": result["status"],
            "pool": result.get("pool"), "warm_ttft_s": result.get("ttft_s"), "chunks": result.get("chunks"),
            "completion_tokens": result.get("completion_tokens"), "ms_per_token": result.get("ms_per_token"),
            "chunk_gap_ms_median": statistics.median(gaps) if gaps else None, "gaps_ms": gaps,
            "error": result.get("error"),
        })
        progress(f"decode at {size:,}: warm TTFT {result.get('ttft_s')} s, {result.get('ms_per_token')} ms/token "
                 f"({result.get('completion_tokens')} tokens in {result.get('chunks')} chunks)")

        # KV capacity vLLM reports for the long pool: its log line, and the metric Ray exports.
        import ray

        logs_dir = Path(ray._private.worker._global_node.get_logs_dir_path())
        from_logs = kv_tokens_from_logs(logs_dir, long_.engine.max_model_len)
        try:
            metrics = kv_tokens_from_metrics(httpx.get(f"http://127.0.0.1:{cluster.metrics_port}/metrics",
                                                       timeout=30).text)
        except httpx.HTTPError as exc:
            metrics = [{"error": repr(exc)}]
        util = str(long_.engine.gpu_memory_utilization)
        long_metrics = [m for m in metrics if m.get("gpu_memory_utilization") == util]
        kv = from_logs[-1] if from_logs else (long_metrics[-1]["tokens"] if len(long_metrics) == 1 else None)
        log.put("kv", {"kv_tokens_vllm": kv, "from_logs": from_logs, "from_metrics": metrics,
                       "logs_dir": str(logs_dir), "kv_tokens_planner": plan.max_tokens,
                       "vllm_over_planner": kv / plan.max_tokens if kv and plan.max_tokens else None})
        progress(f"KV tokens: vLLM {kv} (logs {from_logs}, metrics {[m.get('tokens') for m in metrics]}), "
                 f"planner {plan.max_tokens}")
        log.put("replica_restarts", cluster.replica_restarts())


# --- stage: stock -----------------------------------------------------------------------


def stock_engine_kwargs(config, pool) -> dict:
    """The pool's engine arguments as Serve passes them (deployments/engines.py), for LLM()."""
    from deployments.engines import _rope_engine_kwargs

    kwargs = {**pool.engine.to_engine_kwargs(), "trust_remote_code": config.models[pool.model].trust_remote_code}
    # model_max_length lets vLLM start past its derived 655,360; without the
    # plugin, dynamic_ntk_seq_len is an unread attribute: rotation stays stock.
    overrides = _rope_engine_kwargs(config, pool).get("hf_overrides")
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


# --- stage: correctness -----------------------------------------------------------------


def stage_correctness(args, log: StageLog) -> None:
    from benchmarks.gpu import validate

    # The same profile on the 4-layer checkpoint of the same width (the reference fits one GPU).
    os.environ["INTERNLM25_1M_PATH"] = str(args.models / f"{FULL_CHECKPOINT}-{REDUCED_LAYERS}l")
    log.put("profile", str(args.profile))
    validate.stage_correctness(argparse.Namespace(
        models=args.models, model=MODEL, correctness_sizes=args.correctness_sizes,
        correctness_profile=Path(args.profile)), log)


# --- stage: summary ---------------------------------------------------------------------


def stage_summary(args, _log=None) -> None:
    def read(stage):
        path = args.results / f"tp4_{stage}.json"
        return json.loads(path.read_text()) if path.exists() else {}

    ours, stock, correct = read("ours"), read("stock"), read("correctness")
    v = ours.get("versions") or stock.get("versions") or correct.get("versions") or versions()
    prefill = {r["tokens"]: r for r in ours.get("prefill", []) if r.get("status") == 200}
    stock_by = {r["tokens"]: r for r in stock.get("prefill", [])}
    top = max(prefill, default=None)
    agreement = correct.get("agreement", [])
    floor = min((a["max_abs_diff"] for a in agreement if a["pool"] == SHORT), default=None)
    longest = max((a for a in agreement if a["pool"] == LONG), key=lambda a: a["tokens"], default=None)
    kv = ours.get("kv", {})
    pools = ours.get("pools", {})
    summary = {
        "gpus": v.get("gpu_count"), "gpu": v.get("gpu"), "tp": pools.get(LONG, {}).get("tp"),
        "prompt_tokens": top,
        "ttft_s": prefill[top]["ttft_s"] if top else None,
        "stock_ttft_s": stock_by.get(top, {}).get("stock_s"),
        "ttft_over_stock": (prefill[top]["ttft_s"] / stock_by[top]["stock_s"]) if top in stock_by else None,
        "decode_ms_per_token": ours.get("decode", {}).get("ms_per_token"),
        "kv_tokens_vllm": kv.get("kv_tokens_vllm"), "kv_tokens_planner": kv.get("kv_tokens_planner"),
        "logprob_max_abs_diff": longest and longest["max_abs_diff"],
        "logprob_tolerance": max(0.05, 4 * floor) if floor is not None else None,
        "logprob_wrong_base_diff": longest and longest["wrong_base_diff"],
        "logprob_tokens": longest and longest["tokens"],
        "prefill": [{"tokens": t, "ttft_s": r["ttft_s"], "pool": r["pool"],
                     "stock_s": stock_by.get(t, {}).get("stock_s")} for t, r in sorted(prefill.items())],
        "decode": {k: ours.get("decode", {}).get(k) for k in ("prompt_tokens", "completion_tokens", "chunks",
                                                               "warm_ttft_s", "chunk_gap_ms_median")},
        "routing": ours.get("routing"), "startup_s": ours.get("startup_s"),
        "replica_restarts": ours.get("replica_restarts"), "agreement": agreement,
        "versions": {k: v.get(k) for k in ("python", "ray", "vllm", "torch", "transformers")},
        "command": "benchmarks/gpu/device.sh tp4 {checkpoints,ours,stock,correctness} on nvidia-h200-x4; "
                   "python benchmarks/gpu/tp4_1m.py summary (benchmarks/README.md, Measured on a GPU)",
        "stage_commands": {s: d.get("command") for s, d in (("ours", ours), ("stock", stock),
                                                            ("correctness", correct)) if d},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in list(summary)[:14]}, indent=2))


STAGES = {
    "checkpoints": lambda args, log: log.put("checkpoints_s", ensure_checkpoints(args.models)),
    "ours": stage_ours,
    "stock": stage_stock,
    "correctness": stage_correctness,
    "summary": stage_summary,
}


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__, STAGES)
    parser.add_argument("--profile", default=str(PROFILE), help="profile name or path (dry runs: cpu-demo)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="profile override")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="prompt tokens (ours, stock)")
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument("--correctness-sizes", type=int, nargs="+", default=[8192, 1_048_000])
    parser.add_argument("--out", type=Path, default=SUMMARY, help="summary file (stage summary)")
    args = parser.parse_args(argv)
    if args.stage != "summary":
        from cluster.config import profile_path

        args.profile = profile_path(str(args.profile))
    return run_stage(STAGES, args, "benchmarks/gpu/tp4_1m.py", argv, log_prefix="tp4_")


if __name__ == "__main__":
    sys.exit(main())
