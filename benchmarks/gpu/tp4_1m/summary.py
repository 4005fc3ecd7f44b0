"""Stage ``summary`` (any machine): RESULTS/tp4_*.json folded into benchmarks/results/gpu/tp4_1m.json."""

from __future__ import annotations

import json

from benchmarks.gpu.stage_log import versions
from benchmarks.gpu.tp4_1m.profile import LONG, SHORT


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
                   "python -m benchmarks.gpu.tp4_1m summary (benchmarks/README.md, Measured on a GPU)",
        "stage_commands": {s: d.get("command") for s, d in (("ours", ours), ("stock", stock),
                                                            ("correctness", correct)) if d},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in list(summary)[:14]}, indent=2))
