"""The rotary base modes' cache trade-off on the CPU demo model (rope_base: pool, request, bucket).

One cluster (benchmarks/profiles/rope-base-cpu.yaml) serves the 1M-architecture
demo model three times, one pool per mode, each reaching past the native window
(4,096) to 10,240 tokens. Per mode, one after another:

* a multi-turn chat past the window: a first message of ~4,600 tokens, then
  turns of ~600 tokens, each answer appended to the history; the TTFT of each
  turn, its rotary length and its base's distance from its own-length base
  (the x-rope-seq-len and x-rope-base-ratio headers);
* document questions (benchmarks/common/document_qa.py): documents of ~6,000
  tokens, several questions each; cold and follow-up TTFT.

and, per phase, vLLM's prefix-cache hit rate (hits / queried tokens).

    .venv/bin/python -m benchmarks.cpu.rope_base --turns 9 --documents 3 --questions 4

Writes benchmarks/results/rope_base.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.common.document_qa import QUESTIONS, ask_streaming, document_text
from benchmarks.common.local_cluster import LocalCluster
from benchmarks.common.progress import progress

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "benchmarks" / "profiles" / "rope-base-cpu.yaml"
MODES = ("pool", "request", "bucket")
SOURCE = "rope_base"
# Ray exports metrics every 10 s by default; 2 s lets a phase's counters settle sooner.
METRICS_EXPORT_MS = 2000


def served(mode: str) -> str:
    """The profile's model (and pool) name of a mode."""
    return f"il25-{mode}"


def cache_counters(metrics_url: str) -> tuple[float, float]:
    """(prefix-cache hits, queried tokens) summed over the engines, once Ray's export has settled."""

    def read() -> tuple[float, float]:
        totals = {"hits": 0.0, "queries": 0.0}
        for family in text_string_to_metric_families(httpx.get(metrics_url, timeout=10).text):
            for key in totals:
                if "vllm" in family.name and f"prefix_cache_{key}" in family.name:
                    totals[key] += sum(s.value for s in family.samples if s.name.endswith("_total"))
        return totals["hits"], totals["queries"]

    previous = read()
    while True:
        time.sleep(2.5 * METRICS_EXPORT_MS / 1000)
        current = read()
        if current == previous:
            return current
        previous = current


def chat_turn(client: httpx.Client, model: str, messages: list[dict]) -> dict:
    """One streaming chat turn: TTFT, the answer, and the rotary headers."""
    started, ttft, answer = time.perf_counter(), None, []
    body = {"model": model, "messages": messages, "max_tokens": 16, "temperature": 0, "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"chat failed: {response.status_code} {response.read()[:300]!r}")
        headers = response.headers
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            delta = json.loads(line[6:])["choices"][0].get("delta", {}).get("content")
            if delta:
                ttft = ttft if ttft is not None else time.perf_counter() - started
                answer.append(delta)
    return {"ttft_s": ttft, "answer": "".join(answer), "prompt_tokens": int(headers["x-prompt-tokens"]),
            "rope_seq_len": headers.get("x-rope-seq-len"), "base_ratio": headers.get("x-rope-base-ratio")}


def conversation(client: httpx.Client, mode: str, args, tokenizer) -> list[dict]:
    messages: list[dict] = []
    rows = []
    for turn in range(args.turns):
        tokens = args.first_tokens if turn == 0 else args.turn_tokens
        text = document_text(1000 + turn, tokens, tokenizer)
        messages.append({"role": "user", "content": f"{text}\n\nWhat does clause {turn}.3 require?"})
        result = chat_turn(client, served(mode), messages)
        messages.append({"role": "assistant", "content": result.pop("answer") or "."})
        rows.append({"turn": turn + 1, **result})
        progress(f"{mode}: turn {turn + 1}, {result['prompt_tokens']} tokens, TTFT {result['ttft_s']:.2f} s, "
                 f"L {result['rope_seq_len']}, base ratio {result['base_ratio']}", SOURCE)
    return rows


def documents(client: httpx.Client, mode: str, args, tokenizer) -> list[dict]:
    rows = []
    for index in range(args.documents):
        text = document_text(2000 + index, args.document_tokens, tokenizer)
        response = client.post("/v1/documents", json={"text": text, "model": served(mode)})
        response.raise_for_status()
        doc = response.json()
        for q in range(args.questions):
            ask = ask_streaming(client, doc["id"], QUESTIONS[q % len(QUESTIONS)])
            rows.append({"document": index, "question": q, "tokens": doc["tokens"][served(mode)],
                         "ttft_s": ask["ttft_s"], "pool": ask["pool"]})
        progress(f"{mode}: document {index + 1}, {doc['tokens'][served(mode)]} tokens, first question "
                 f"{rows[-args.questions]['ttft_s']:.2f} s, follow-ups "
                 f"{statistics.median(r['ttft_s'] for r in rows[-args.questions + 1:]):.3f} s", SOURCE)
    return rows


def hit_rate(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    queries = after[1] - before[1]
    return None if queries <= 0 else (after[0] - before[0]) / queries


def run_mode(cluster: LocalCluster, client: httpx.Client, mode: str, args) -> dict:
    from deployments.tokens import PromptTokenizer

    tokenizer = PromptTokenizer(served(mode), cluster.config.models[served(mode)])
    metrics_url = f"http://127.0.0.1:{cluster.metrics_port}/metrics"
    start = cache_counters(metrics_url)
    turns = conversation(client, mode, args, tokenizer)
    after_chat = cache_counters(metrics_url)
    questions = documents(client, mode, args, tokenizer)
    after_docs = cache_counters(metrics_url)
    later = [r["ttft_s"] for r in turns[1:]]
    cold = [r["ttft_s"] for r in questions if r["question"] == 0]
    warm = [r["ttft_s"] for r in questions if r["question"] > 0]
    return {
        "mode": mode,
        "conversation": {
            "turns": turns,
            "later_turns_ttft_s_median": statistics.median(later),
            "later_turns_ttft_s_total": sum(later),
            "prefix_cache_hit_rate": hit_rate(start, after_chat),
        },
        "documents": {
            "questions": questions,
            "cold_ttft_s_median": statistics.median(cold),
            "follow_up_ttft_s_median": statistics.median(warm),
            "prefix_cache_hit_rate": hit_rate(after_chat, after_docs),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu.rope_base", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--turns", type=int, default=9)
    parser.add_argument("--first-tokens", type=int, default=4600)
    parser.add_argument("--turn-tokens", type=int, default=600)
    parser.add_argument("--documents", type=int, default=3)
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--document-tokens", type=int, default=6000)
    parser.add_argument("--data-dir", default=str(REPO / "build" / "data" / "bench-rope"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "rope_base.json"))
    args = parser.parse_args()

    from cluster.demo import build_all

    build_all(REPO / "build" / "models")
    os.environ["RAY_metrics_report_interval_ms"] = str(METRICS_EXPORT_MS)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    overrides = [f"documents.store.data_dir={args.data_dir}/{int(time.time())}"]
    with LocalCluster(PROFILE, overrides, source=SOURCE) as cluster:
        with httpx.Client(base_url=cluster.url, timeout=1800) as client:
            for mode in args.modes.split(","):
                rows.append(run_mode(cluster, client, mode, args))
                # Written after each mode, so a long run keeps what it measured.
                out.write_text(json.dumps({"profile": str(PROFILE.relative_to(REPO)), "args": vars(args),
                                           "results": rows}, indent=2))
    for row in rows:
        chat, docs = row["conversation"], row["documents"]
        print(f"{row['mode']:>8}: turns 2-{args.turns} TTFT median {chat['later_turns_ttft_s_median']:.2f} s "
              f"(total {chat['later_turns_ttft_s_total']:.1f} s), chat cache hits {chat['prefix_cache_hit_rate']:.0%}; "
              f"documents cold {docs['cold_ttft_s_median']:.2f} s, follow-ups {docs['follow_up_ttft_s_median']:.3f} s, "
              f"cache hits {docs['prefix_cache_hit_rate']:.0%}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
