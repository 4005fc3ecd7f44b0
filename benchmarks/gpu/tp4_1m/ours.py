"""Stage ``ours``: 1M tokens through the real stack on a TP=4 group, decode at 1M, KV capacity vs the planner."""

from __future__ import annotations

import json
import re
import statistics
import time
from pathlib import Path

from benchmarks.common.local_cluster import LocalCluster
from benchmarks.common.progress import progress
from benchmarks.common.prompts import random_ids
from benchmarks.gpu.checkpoints import use_full_checkpoint
from benchmarks.gpu.stage_log import StageLog
from benchmarks.gpu.tp4_1m.profile import LONG, SHORT, prompt_ids
from benchmarks.gpu.validated_models import DEFAULT_MODEL as MODEL

KV_LOG = re.compile(r"GPU KV cache size: ([\d,]+) tokens, Maximum concurrency for ([\d,]+) tokens")


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
