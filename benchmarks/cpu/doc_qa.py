"""Document QA on the CPU demo models: cold vs warm time to first token, affinity, throughput, by router.

For each replica router (ours: bounded-load document affinity; Serve's
default power-of-two; Ray Serve LLM's PrefixCacheAffinityRouter) the cluster
starts from benchmarks/profiles/doc-qa-cpu.yaml (one pool, two replicas, KV
capped near three 16k documents per replica), uploads N documents of ~16k
tokens and asks Q questions about each (benchmarks/common/document_qa.py).

Per router it reports: TTFT of each document's first question (cold), of the
later ones (warm), the share of follow-ups answered by the replica that
answered the document's first question, and questions per second.

    .venv/bin/python -m benchmarks.cpu.doc_qa --documents 6 --questions 5

Writes benchmarks/results/doc_qa.json and doc_qa.png.

With ``--warm`` it measures instead what a warm-up at upload buys: the first
question's TTFT on documents uploaded cold and with ``"warm": true`` (asked
once the warm-up is ready), against a follow-up's (doc_qa_warm.json):

    .venv/bin/python -m benchmarks.cpu.doc_qa --warm --documents 6
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx
from tqdm import tqdm

from benchmarks.common.document_qa import (
    MODEL,
    QUESTIONS,
    ROUTERS,
    ask_streaming,
    document_texts,
    plot,
    run,
    running_cluster,
)

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "benchmarks" / "profiles" / "doc-qa-cpu.yaml"


def wait_warm(client: httpx.Client, doc_id: str, timeout_s: float = 1800) -> dict:
    """The document's warm state once its warm-up has ended (polled)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        warm = client.get(f"/v1/documents/{doc_id}").json()["warm"]
        if warm["status"] in ("ready", "failed"):
            return warm
        time.sleep(0.2)
    raise RuntimeError(f"warm-up of {doc_id} did not end within {timeout_s} s")


def run_warm(args, texts: list[str]) -> dict:
    """First-question TTFT with and without a warm-up, against a follow-up's.

    One document at a time on the affinity router: even-numbered documents
    are uploaded cold, odd ones with ``"warm": true`` and asked once the
    warm-up is ready; each gets a first question and a follow-up.
    """
    rows = []
    with running_cluster("affinity", args) as client:
        for i, text in enumerate(tqdm(texts, desc="warm: documents", file=sys.stderr)):
            warm = i % 2 == 1
            response = client.post("/v1/documents", json={"text": text, "model": MODEL, "warm": warm})
            response.raise_for_status()
            doc = response.json()
            state = wait_warm(client, doc["id"]) if warm else None
            if state is not None and state["status"] != "ready":
                raise RuntimeError(f"warm-up failed: {state}")
            first = ask_streaming(client, doc["id"], QUESTIONS[0])
            follow = ask_streaming(client, doc["id"], QUESTIONS[1])
            rows.append({"warm": warm, "tokens": doc["tokens"][MODEL], "first_ttft_s": first["ttft_s"],
                         "follow_up_ttft_s": follow["ttft_s"],
                         "same_replica": first["replica"] == follow["replica"] == (state or first)["replica"]})
    cold_first = statistics.median(r["first_ttft_s"] for r in rows if not r["warm"])
    warm_first = statistics.median(r["first_ttft_s"] for r in rows if r["warm"])
    follow_up = statistics.median(r["follow_up_ttft_s"] for r in rows)
    return {
        "documents": len(rows),
        "document_tokens": [r["tokens"] for r in rows],
        "cold_first_ttft_s_median": cold_first,
        "warmed_first_ttft_s_median": warm_first,
        "follow_up_ttft_s_median": follow_up,
        "warmed_first_over_follow_up": warm_first / follow_up,
        "cold_first_over_follow_up": cold_first / follow_up,
        "all_on_holding_replica": all(r["same_replica"] for r in rows),
        "per_document": rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu.doc_qa", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=6)
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--document-tokens", type=int, default=15_800)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--routers", default=",".join(ROUTERS))
    parser.add_argument("--data-dir", default=str(REPO / "build" / "data" / "bench"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "doc_qa.json"))
    parser.add_argument("--warm", action="store_true",
                        help="measure first-question TTFT with and without a warm-up at upload "
                             "(affinity router; writes doc_qa_warm.json)")
    args = parser.parse_args()

    from cluster.demo import build_all

    build_all(REPO / "build" / "models")
    args.profile = PROFILE
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(rows):
        # Written after each router, so a long run keeps what it measured.
        out.write_text(json.dumps({"profile": str(PROFILE.relative_to(REPO)), "results": rows}, indent=2))

    if args.warm:
        result = run_warm(args, document_texts(PROFILE, args.documents, args.document_tokens))
        warm_out = out.with_name("doc_qa_warm.json")
        warm_out.write_text(json.dumps({"profile": str(PROFILE.relative_to(REPO)), "results": result}, indent=2))
        print(f"first question: cold {result['cold_first_ttft_s_median']:.2f} s, after a warm-up "
              f"{result['warmed_first_ttft_s_median']:.3f} s; follow-up {result['follow_up_ttft_s_median']:.3f} s "
              f"(warmed first / follow-up = {result['warmed_first_over_follow_up']:.2f}x)")
        print(f"wrote {warm_out}")
        return 0
    rows = run(args, args.routers.split(","), on_result=lambda _: None, on_rows=write)
    plot(rows, out.with_suffix(".png"))
    for row in rows:
        print(f"{row['router']:>14}: cold {row['cold_ttft_s_median']:.2f} s, warm {row['warm_ttft_s_median']:.3f} s "
              f"({row['cold_over_warm']:.0f}x), {100 * row['follow_ups_on_holding_replica']:.0f}% on holder, "
              f"{row['questions_per_s']:.2f} q/s")
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
