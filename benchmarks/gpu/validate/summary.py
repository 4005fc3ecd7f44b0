"""Stage ``summary`` (any machine): fold the GPU validation's stage files into summary.json and the doc-QA plot."""

from __future__ import annotations

import json
import statistics

from benchmarks.common import document_qa
from benchmarks.gpu.validate import rope_ab
from benchmarks.gpu.validate.kv_tier import HEADLINE_KEYS
from benchmarks.gpu.validate.warm_path import warm_rows
from benchmarks.gpu.validated_models import DEFAULT_MODEL, VALIDATED_MODELS

C2_RUN_KEYS = ("repeats", "ours_ms", "engine_ms", "ratio", "serve_throughput_optimized", "ours_direct_ingress_ms",
               "direct_ingress_ratio")


TOLERANCE_RULE = ("max(0.05, 4 x the engine-vs-reference difference at 8k tokens inside the native window, "
                  "where both use the stock base: the bf16 noise floor)")


def model_summary(serve_: dict, stock: dict, correct: dict, short_pool: str) -> dict:
    """One model's (a) routing, (b) logprob agreement and (c) prefill against stock vLLM."""
    agreement = correct.get("agreement", [])
    # The card of the correctness run: it may differ from the serve stage's (the summary's "gpu").
    card = correct.get("versions", {}).get("gpu")
    floor = min((a["max_abs_diff"] for a in agreement if a["pool"] == short_pool), default=None)
    tolerance = max(0.05, 4 * floor) if floor is not None else None
    stock_by_size = {r["tokens"]: r for r in stock.get("prefill", [])}
    prefill = []
    for row in serve_.get("prefill", []):
        base = stock_by_size.get(row["tokens"])
        prefill.append({
            "tokens": row["tokens"], "pool": row["pool"], "ours_tok_s": row["ours_tok_s"],
            "stock_tok_s": base and base["stock_tok_s"],
            "ratio": base and row["ours_tok_s"] and row["ours_tok_s"] / base["stock_tok_s"],
            "ingress_route_ms": row.get("route_ms"), "ingress_tokenize_ms_text": row.get("tokenize_ms_text_prompt"),
        })
    return {
        "long_pool_max_tokens": max((p["band"][1] for p in serve_.get("pools", {}).values()), default=None),
        "routing": serve_.get("routing"),
        "replica_restarts": serve_.get("replica_restarts"),
        "startup_s": serve_.get("startup_s"),
        "logprob_agreement": [
            {"tokens": a["tokens"], "pool": a["pool"], "max_abs_diff": a["max_abs_diff"], "tolerance": tolerance,
             "wrong_base_diff": a["wrong_base_diff"], "card": card,
             # Runs with per-request bases: the L the ingress sent and the base compared at.
             **{k: a[k] for k in ("rope_seq_len", "base", "wrong_base") if k in a}} for a in agreement],
        "logprob_tolerance_rule": TOLERANCE_RULE,
        "prefill": prefill,
    }


def warm_path_summary(results) -> tuple[list[dict] | None, list[dict] | None]:
    """Issue 27's rows: warm follow-ups (tokens, ours_s, vllm_serve_s, ratio, card) and short requests over HTTP.

    A length measured in parts (one command per server, ``--warm-arms``) is put
    back together from the files' samples, per card: no row mixes two cards.
    """
    merged: dict[str, dict] = {}
    overhead = []
    for path in sorted([*results.glob("warm_path-*.json"), *results.glob("short_overhead_http.json")]):
        stage = json.loads(path.read_text())
        card = stage.get("card")
        into = merged.setdefault(card, {"card": card, "samples": {}, "modes": {}, "documents": {}})
        for tokens, arms in stage.get("samples", {}).items():
            into["samples"].setdefault(tokens, {}).update(arms)
        into["modes"].update(stage.get("modes", {}))
        into["documents"].update(stage.get("documents", {}))
        overhead += [{**row, "file": path.name} for row in stage.get("short_overhead_http", [])]
    rows = [row for card in sorted(merged, key=str) for row in warm_rows(merged[card])]
    return rows or None, overhead or None


def stage_summary(args, _log=None) -> None:
    results = args.results

    def read(stage):
        path = results / f"{stage}.json"
        return json.loads(path.read_text()) if path.exists() else {}

    serve_, stock, correct, qa = read("serve"), read("stock"), read("correctness"), read("doc_qa")
    tier, overhead = read("kv_tier"), read("overhead")
    # The overhead stage's c2 runs (with direct ingress: an earlier 12-round
    # one, then the latest) join the serve stage's runs.
    direct_c2 = overhead.get("short_overhead", {})
    c2_runs = serve_.get("short_overhead_runs", []) + [
        {**run["short_overhead"], "run": {"started": run["started"]}}
        for run in (read("overhead-12-rounds"), overhead) if run.get("short_overhead")]
    v = serve_.get("versions") or stock.get("versions") or correct.get("versions") or {}
    # The second model's serve, stock and correctness stages (benchmarks.gpu.validate --model).
    il3 = VALIDATED_MODELS["internlm3-8b-instruct"]
    il3_stages = [read(il3.results_prefix + stage) for stage in ("serve", "stock", "correctness")]
    warm_path, short_overhead_http = warm_path_summary(results)
    summary = {
        "gpu": v.get("gpu"), "ray": v.get("ray"), "vllm": v.get("vllm"), "torch": v.get("torch"),
        "python": v.get("python"),
        "command": "python -m benchmarks.gpu.validate {checkpoints,serve,stock,correctness,doc_qa,kv_tier,warm_path} "
                   "[--model internlm3-8b-instruct] --results benchmarks/results/gpu (each stage on the GPU test "
                   "machine via benchmarks/gpu/device.sh; \"gpu\" is the serve stage's card, rows of other stages "
                   "name theirs under \"card\"; benchmarks/README.md, Measured on a GPU)",
        **model_summary(serve_, stock, correct, VALIDATED_MODELS[DEFAULT_MODEL].short_pool),
        "short_overhead": {k: serve_.get("short_overhead", {}).get(k) for k in ("ours_ms", "engine_ms", "ratio")},
        # Our API through the ingress replica's own port (Serve's direct ingress: no proxy hop).
        "short_overhead_direct_ingress": {
            "ours_ms": direct_c2["ours_direct_ingress_ms"], "engine_ms": direct_c2["engine_ms"],
            "ratio": direct_c2["direct_ingress_ratio"],
        } if direct_c2.get("direct_ingress") else None,
        # Every c2 measurement, e.g. with and without RAY_SERVE_THROUGHPUT_OPTIMIZED or direct ingress.
        "short_overhead_runs": [
            {**{k: run.get(k) for k in C2_RUN_KEYS}, "started": run.get("run", {}).get("started")}
            for run in c2_runs] or None,
        "doc_qa": [{
            "router": r["router"], "doc_tokens": statistics.median(r["document_tokens"]),
            "cold_ttft_s": r["cold_ttft_s_median"], "warm_ttft_s": r["warm_ttft_s_median"],
            "warm_p90_s": r["warm_ttft_s_p90"], "affinity": r["follow_ups_on_holding_replica"],
            "questions_per_s": r["questions_per_s"], "cold_over_warm": r["cold_over_warm"],
        } for r in qa.get("results", [])],
        "doc_qa_not_measured": qa.get("not_measured"),
        # Issue 11's headline (kv_tier.json has the per-question detail).
        "kv_tier": {k: tier[k] for k in HEADLINE_KEYS if k in tier} or None,
        # Issue 27: warm follow-ups and 1k-token requests, our API against `vllm serve` on one GPU.
        "warm_path": warm_path,
        "short_overhead_http": short_overhead_http,
        # InternLM3-8B-Instruct on its own one-GPU profile: the same (a), (b), (c).
        # Its prefill past the window: our engine and stock vLLM's rope variants with the GPU's clock.
        "internlm3": {"model": il3.model, **model_summary(*il3_stages, il3.short_pool),
                      "rope_ab": rope_ab.summarize(results)} if any(il3_stages) else None,
    }
    (results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if qa.get("results"):
        document_qa.plot(qa["results"], results / "doc_qa.png")
    print(json.dumps(summary, indent=2))


