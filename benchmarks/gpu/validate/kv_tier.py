"""Stage ``kv_tier``: questions on GPU-evicted documents, host-RAM KV tier off vs on (issue 11).

One cluster from benchmarks/profiles/kv-tier-h200.yaml serves the same
checkpoint as two models, one pool each, on one H200: ``il25-tier-off``
(GPU prefix cache only) and ``il25-tier-on`` (the same plus a 64 GiB native
host-RAM tier). Each engine's GPU KV holds one 128k-token document.

Per model, one after the other (never both at once, so they do not share
the GPU's compute): every document's first question (cold), then rounds in
which each document is asked again after the other documents have pushed it
out of GPU memory (evicted) and once more straight away (GPU-resident).
Time to first token is measured on the streaming documents API
(``/v1/documents/{id}/ask``), as a QA front end sees it. The engines' own
tier counters (``ray_vllm_external_prefix_cache_*``, ``ray_vllm_kv_offload_*``)
are read from the cluster's metrics port at the end, to show where the
evicted documents came from.

Writes kv_tier.json (the issue's keys at the top level) and kv_tier.png.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import httpx

from benchmarks.common.document_qa import QUESTIONS, ask_streaming, document_texts
from benchmarks.common.local_cluster import LocalCluster
from benchmarks.common.progress import progress
from benchmarks.gpu.checkpoints import ensure_checkpoints
from benchmarks.gpu.stage_log import StageLog

MODELS = {"off": "il25-tier-off", "on": "il25-tier-on"}
TIER_SERIES = ("ray_vllm_external_prefix_cache_queries", "ray_vllm_external_prefix_cache_hits",
               "ray_vllm_kv_offload_load_bytes", "ray_vllm_kv_offload_store_bytes",
               "ray_vllm_kv_offload_load_time", "ray_vllm_prefix_cache_hits")
# The figures (kv_tier.json's top level; summary.json carries them too).
HEADLINE_KEYS = ("doc_tokens", "working_set_docs", "gpu_kv_docs", "cold_ttft_s", "gpu_warm_ttft_s",
                 "evicted_ttft_s_tier_off", "evicted_ttft_s_tier_on", "questions_per_s_tier_off",
                 "questions_per_s_tier_on", "evicted_on_over_cold")


def run_model(client: httpx.Client, model: str, doc_ids: list[str], rounds: int, log, key: str) -> dict:
    """Cold, evicted and GPU-resident questions on one model's engine."""
    asked: list[dict] = []

    def one(kind: str, d: int, q: int) -> None:
        row = {"kind": kind, "document": d,
               **ask_streaming(client, doc_ids[d], QUESTIONS[q % len(QUESTIONS)], model=model)}
        asked.append(row)
        log.append(f"questions_{key}", row)
        progress(f"{model}: {kind} doc {d}: TTFT {row['ttft_s']:.3f} s")

    started = time.perf_counter()
    for d in range(len(doc_ids)):
        one("cold", d, 0)
    for r in range(rounds):
        for d in range(len(doc_ids)):
            one("evicted", d, 1 + 2 * r)  # the other documents were asked since: gone from GPU KV
            one("gpu_warm", d, 2 + 2 * r)  # asked again at once: still in GPU KV
    wall = time.perf_counter() - started

    def median(kind: str) -> float:
        return statistics.median(a["ttft_s"] for a in asked if a["kind"] == kind)

    return {"model": model, "cold_ttft_s": median("cold"), "evicted_ttft_s": median("evicted"),
            "gpu_warm_ttft_s": median("gpu_warm"), "questions": len(asked),
            "questions_per_s": len(asked) / wall, "pools": sorted({a["pool"] for a in asked})}


def tier_metrics(metrics_url: str, timeout_s: float = 30.0) -> dict[str, float]:
    """The engines' tier counters summed per series and model, once Ray has exported them."""
    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + timeout_s
    found: dict[str, float] = {}
    while time.monotonic() < deadline:
        found = {}
        for family in text_string_to_metric_families(httpx.get(metrics_url, timeout=10).text):
            if family.name.removesuffix("_total") not in TIER_SERIES:  # counter or untyped
                continue
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    key = f"{sample.name}{{{sample.labels.get('model_name', '')}}}"
                    found[key] = found.get(key, 0.0) + sample.value
        if any("kv_offload_load_bytes" in k for k in found):
            break
        time.sleep(2)  # Ray exports engine metrics every few seconds: poll until the loads show
    return found


def run(args, log, profile: Path, texts: list[str]) -> dict:
    with LocalCluster(profile) as cluster:
        log.put("startup_s", round(cluster.startup_s, 1))
        with httpx.Client(base_url=cluster.url, timeout=1800) as client:
            doc_ids, doc_tokens = [], []
            for text in texts:
                response = client.post("/v1/documents", json={"text": text})
                response.raise_for_status()
                doc = response.json()
                doc_ids.append(doc["id"])
                doc_tokens.append(doc["tokens"][MODELS["on"]])
            log.put("document_tokens", doc_tokens)
            by_tier = {}
            for key in args.kv_tier_order:
                by_tier[key] = run_model(client, MODELS[key], doc_ids, args.kv_tier_rounds, log, key)
                log.put(f"tier_{key}", by_tier[key])
        log.put("engine_tier_metrics", tier_metrics(f"http://127.0.0.1:{cluster.metrics_port}/metrics"))
        log.put("replica_restarts", cluster.replica_restarts())
    return {"document_tokens": doc_tokens, **{f"tier_{k}": v for k, v in by_tier.items()}}


def headline(config, measured: dict) -> dict:
    """The issue's keys: cold and GPU-resident from the tier-off engine (the tier plays no part there)."""
    from cluster.planner.architecture import resolve_architecture

    pool = next(p for p in config.pools if p.kv_tier is None)
    arch = resolve_architecture(pool.model, config.models[pool.model])
    per_token = arch.kv_bytes_per_token(arch.kv_heads_per_rank(1), 2)
    doc_tokens = statistics.median(measured["document_tokens"])
    off, on = measured["tier_off"], measured["tier_on"]
    return {
        "doc_tokens": doc_tokens,
        "working_set_docs": len(measured["document_tokens"]),
        "gpu_kv_docs": int(pool.engine.extra["kv_cache_memory_bytes"] // per_token // doc_tokens),
        "cold_ttft_s": off["cold_ttft_s"],
        "gpu_warm_ttft_s": off["gpu_warm_ttft_s"],
        "evicted_ttft_s_tier_off": off["evicted_ttft_s"],
        "evicted_ttft_s_tier_on": on["evicted_ttft_s"],
        "questions_per_s_tier_off": off["questions_per_s"],
        "questions_per_s_tier_on": on["questions_per_s"],
        "evicted_on_over_cold": on["evicted_ttft_s"] / off["cold_ttft_s"],
        "goal": "evicted_ttft_s_tier_on <= 0.10 x cold_ttft_s",
    }


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["cold", "GPU-resident", "evicted,\ntier off", "evicted,\ntier on"]
    values = [summary["cold_ttft_s"], summary["gpu_warm_ttft_s"], summary["evicted_ttft_s_tier_off"],
              summary["evicted_ttft_s_tier_on"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    bars = ax.bar(labels, values, color=["#999999", "#4c72b0", "#dd8452", "#55a868"])
    ax.bar_label(bars, labels=[f"{v:.2f} s" for v in values])
    ax.set_yscale("log")
    ax.set_ylim(top=max(values) * 2)  # room for the labels above the tallest bar
    ax.set_ylabel("time to first token (s, log)")
    ax.set_title(f"{summary['doc_tokens'] / 1000:.0f}k-token documents, working set "
                 f"{summary['working_set_docs']} docs, GPU KV {summary['gpu_kv_docs']} doc (H200)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def stage_kv_tier(args, log: StageLog) -> None:
    from cluster.config import load_config

    os.environ["LONGCTX_GPU_MODELS"] = str(args.models)
    ensure_checkpoints(args.models, reduced=False)
    progress(f"writing {args.kv_tier_documents} documents of {args.document_tokens} tokens ...")
    texts = document_texts(args.kv_tier_profile, args.kv_tier_documents, args.document_tokens, first=100,
                           model=MODELS["on"])
    measured = run(args, log, args.kv_tier_profile, texts)
    summary = headline(load_config(args.kv_tier_profile), measured)
    for key, value in summary.items():
        log.put(key, value)
    plot(summary, args.results / "kv_tier.png")
    progress(f"evicted TTFT: tier off {summary['evicted_ttft_s_tier_off']:.2f} s, tier on "
             f"{summary['evicted_ttft_s_tier_on']:.2f} s; cold {summary['cold_ttft_s']:.2f} s")
