"""Stage ``serve``: the whole stack on one GPU, (a) routing and limits, (c) cold prefill, (c2) short overhead.

Profile h200-1gpu[-internlm3] (a short and a long pool sharing the GPU):
(a) a short chat lands on the short pool and one token over the longest band
is a 413; (c) cold prefill tokens/s of token-id prompts at 32k, 128k and the
long pool's maximum through the HTTP API, with the ingress's own time;
(c2) what our path adds to 1k-token requests (overhead.py); replica restarts.
"""

from __future__ import annotations

import time

from benchmarks.common.http_timing import server_timing_ms, stream_completion
from benchmarks.common.local_cluster import LocalCluster
from benchmarks.common.progress import progress
from benchmarks.common.prompts import random_ids
from benchmarks.gpu.checkpoints import use_full_checkpoint
from benchmarks.gpu.stage_log import StageLog
from benchmarks.gpu.validate.overhead import short_overhead
from benchmarks.gpu.validated_models import VALIDATED_MODELS


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
