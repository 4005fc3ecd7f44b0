"""What the ingress costs: token counting and routing, against calling a pool directly.

Starts the CPU demo cluster in-process (Ray + Serve + vLLM CPU engines), then:

1. Ingress work per prompt size (1k, 100k, 1M tokens): client-observed time
   of a request that the ingress fully parses, tokenizes and routes, and the
   ingress's own Server-Timing split (tokenize, route). Prompts above the demo
   pools' limit are refused with 413 *after* counting, so the figure is the
   whole ingress cost without engine time.
2. Overhead against the pool deployment: the same prompt (1k and 8k tokens,
   max_tokens=1) sent through HTTP + ingress, and as pre-tokenized ids
   straight to the pool's Serve handle. The difference is what the ingress
   adds per request. The cluster runs with Serve's direct ingress
   (``ingress.direct_ingress``), so the HTTP request is timed twice: through
   Serve's proxy and through the ingress replica's own port.

    .venv/bin/python -m benchmarks.cpu.ingress_overhead --repeats 5

Writes benchmarks/results/ingress_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

from benchmarks.common.direct_pool import DirectPool
from benchmarks.common.http_timing import server_timing_ms
from benchmarks.common.local_cluster import LocalCluster
from benchmarks.common.progress import progress as common_progress

REPO = Path(__file__).resolve().parents[2]
MODEL = "internlm2_5-7b-chat-1m"


def _median(values) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def text_of_tokens(tokenizer, n_tokens: int) -> str:
    """Local prose of about n_tokens (the repo's own sources, repeated)."""
    corpus = "\n".join(p.read_text() for p in sorted((REPO / "cluster").glob("*.py")))
    per_char = len(tokenizer.text_ids(corpus[:20000], add_special_tokens=False)) / 20000
    chars = int(n_tokens / per_char)
    text = (corpus * (chars // len(corpus) + 1))[:chars]
    return text


def progress(msg: str) -> None:
    common_progress(msg, "ingress_overhead")


def ingress_work(client: httpx.Client, tokenizer, repeats: int) -> list[dict]:
    """1. The ingress's whole cost per prompt size: counted, routed, and refused with 413 past the pools' limit."""
    rows_by_size = []
    for size in (1_000, 100_000, 1_000_000):
        text = text_of_tokens(tokenizer, size)
        body = {"model": MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": 1}
        payload = json.dumps(body).encode()
        rows = []
        for i in range(repeats):
            t0 = time.perf_counter()
            response = client.post("/v1/chat/completions", content=payload,
                                   headers={"content-type": "application/json"})
            elapsed = time.perf_counter() - t0
            timing = server_timing_ms(response.headers.get("server-timing"))
            rows.append({"status": response.status_code, "client_s": elapsed,
                         "tokenize_ms": timing.get("tokenize"), "route_ms": timing.get("route"),
                         "prompt_tokens": int(response.headers.get("x-prompt-tokens", 0))})
            progress(f"size {size:>9,}: run {i + 1}/{repeats} status {response.status_code} "
                     f"{elapsed * 1000:.0f} ms")
        rows_by_size.append({
            "target_tokens": size,
            "prompt_tokens": rows[0]["prompt_tokens"],
            "body_bytes": len(payload),
            "status": rows[0]["status"],
            "client_ms_median": statistics.median(r["client_s"] for r in rows) * 1000,
            "tokenize_ms_median": _median(r["tokenize_ms"] for r in rows),
            "route_ms_median": _median(r["route_ms"] for r in rows),
        })
    return rows_by_size


def overhead_vs_direct(config, client: httpx.Client, replica_client: httpx.Client, tokenizer,
                       repeats: int) -> list[dict]:
    """2. The same prompt through HTTP + ingress (proxy, and the replica's own port) and straight to the pool."""
    from cluster.cli import APP_NAME
    from deployments.engines import pool_deployment_name

    rows = []
    for size in (1_000, 8_000):
        text = text_of_tokens(tokenizer, size)
        messages = [{"role": "user", "content": text}]
        ids = tokenizer.chat_ids(messages)
        pool = next(p for p in config.pools_of(MODEL) if len(ids) + 1 <= p.max_tokens)
        direct_pool = DirectPool(pool_deployment_name(pool.name), APP_NAME, MODEL)

        via_ingress, via_replica, direct = [], [], []
        body = {"model": MODEL, "messages": messages, "max_tokens": 1}
        # Interleave so drift in the engine (caches, warm-up) hits both alike;
        # the first round warms up and is dropped.
        for i in range(repeats + 1):
            d = direct_pool.complete(ids)
            t0 = time.perf_counter()
            response = client.post("/v1/chat/completions", json=body)
            v = time.perf_counter() - t0
            assert response.status_code == 200, response.text
            t0 = time.perf_counter()
            response = replica_client.post("/v1/chat/completions", json=body)
            r = time.perf_counter() - t0
            assert response.status_code == 200, response.text
            if i:
                direct.append(d)
                via_ingress.append(v)
                via_replica.append(r)
            progress(f"overhead {size:>6,} tokens ({pool.name}): run {i}/{repeats} "
                     f"direct {d * 1000:.0f} ms, ingress {v * 1000:.0f} ms, replica port {r * 1000:.0f} ms")
        direct_pool.close()
        rows.append({
            "prompt_tokens": len(ids),
            "pool": pool.name,
            "direct_ms_median": statistics.median(direct) * 1000,
            "ingress_ms_median": statistics.median(via_ingress) * 1000,
            "overhead_ms_median": (statistics.median(via_ingress) - statistics.median(direct)) * 1000,
            "direct_ingress_ms_median": statistics.median(via_replica) * 1000,
            "direct_ingress_overhead_ms_median": (statistics.median(via_replica) - statistics.median(direct)) * 1000,
        })
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu.ingress_overhead", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "ingress_overhead.json"))
    args = parser.parse_args()

    from cluster.cli import APP_NAME
    from cluster.config import profile_path
    from cluster.demo import build_all
    from cluster.direct_ingress import ingress_replica_urls, skip_draining_without_balancer
    from deployments.tokens import PromptTokenizer

    build_all(REPO / "build" / "models")
    skip_draining_without_balancer()
    with LocalCluster(profile_path("cpu-demo"), ["ingress.direct_ingress=true"], source="ingress_overhead") as cluster:
        tokenizer = PromptTokenizer(MODEL, cluster.config.models[MODEL])
        with httpx.Client(base_url=cluster.url, timeout=3600) as client, \
                httpx.Client(base_url=ingress_replica_urls(APP_NAME)[0], timeout=3600) as replica_client:
            results = {"profile": "cpu-demo", "model": MODEL, "repeats": args.repeats,
                       "ingress_work": ingress_work(client, tokenizer, args.repeats),
                       "overhead_vs_direct": overhead_vs_direct(cluster.config, client, replica_client, tokenizer,
                                                                args.repeats)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    progress(f"wrote {out}")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
