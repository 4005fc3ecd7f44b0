"""Document QA per replica router: cold vs warm time to first token, affinity, throughput.

The measurement the CPU benchmark (benchmarks/cpu/doc_qa.py) and the GPU
stage (benchmarks/gpu/validate/doc_qa.py) share: for each replica router the
profile's cluster starts, the documents are uploaded, and every document gets
``questions`` questions, round-robin over the documents with a few requests in
flight, as a QA front end would. Per router: TTFT of each document's first
question (cold), of the later ones (warm), the share of follow-ups answered by
the replica that answered the document's first question, questions per second.
"""

from __future__ import annotations

import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
from tqdm import tqdm

from benchmarks.common.http_timing import server_timing_ms
from benchmarks.common.local_cluster import LocalCluster
from benchmarks.common.replicas import replica_restarts

MODEL = "internlm2_5-7b-chat-1m"
ROUTERS = ("affinity", "power_of_two", "prefix_cache")
# Router names beyond the policies: the affinity policy with another placement
# of new documents (affinity_ring: the consistent-hash placement it had before
# placement by load became the default).
ROUTER_OVERRIDES = {"affinity_ring": ["pools.il25-qa.routing.policy=affinity",
                                      "pools.il25-qa.routing.placement=ring"]}
QUESTIONS = [
    "Which party carries the obligations in clause 4?",
    "Summarise the termination terms.",
    "What are the payment deadlines?",
    "Who may audit the records?",
    "What happens on breach?",
    "Which law governs the contract?",
    "List every notice period.",
    "Is there a liability cap?",
]


def document_text(index: int, tokens: int, tokenizer) -> str:
    """A synthetic contract of about `tokens` tokens, distinct per index."""

    def clause(n: int) -> str:
        return (f"Clause {index}.{n}: party {n % 5} of contract {index} shall deliver item "
                f"{(n * 7919 + index) % 1000} by day {n % 28 + 1} or pay a fee of {n * 13 % 997} units. ")

    # Size the text from a sample, then tokenize once (re-tokenizing a growing
    # text is quadratic: minutes at 128k tokens).
    sample = "".join(clause(n) for n in range(50))
    per_clause = len(tokenizer.text_ids(sample, add_special_tokens=False)) / 50
    count = int(tokens / per_clause * 1.1) + 50
    while True:
        ids = tokenizer.text_ids("".join(clause(n) for n in range(count)), add_special_tokens=False)
        if len(ids) >= tokens:
            return tokenizer.decode(ids[:tokens])
        count = int(count * 1.2)


def document_texts(profile: Path, count: int, tokens: int, first: int = 0, model: str = MODEL) -> list[str]:
    """``count`` distinct contracts of ``tokens`` tokens each (indices from ``first``), by the profile's tokenizer."""
    from cluster.config import load_config
    from deployments.tokens import PromptTokenizer

    tokenizer = PromptTokenizer(model, load_config(profile).models[model])
    return [document_text(first + i, tokens, tokenizer) for i in range(count)]


def ask_streaming(client: httpx.Client, doc_id: str, question: str, model: str | None = None) -> dict:
    """One streaming question (to ``model``, default the document's first); time to the first content chunk."""
    started = time.perf_counter()
    ttft = None
    body = {"question": question, "max_tokens": 8, "stream": True, **({"model": model} if model else {})}
    with client.stream("POST", f"/v1/documents/{doc_id}/ask", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"ask failed: {response.status_code} {response.read()[:300]!r}")
        replica = response.headers.get("x-replica", "")
        for line in response.iter_lines():
            if ttft is None and line.startswith("data: {") and '"content"' in line:
                ttft = time.perf_counter() - started
    return {"ttft_s": ttft, "total_s": time.perf_counter() - started, "replica": replica,
            "pool": response.headers.get("x-pool"),
            "server_timing_ms": server_timing_ms(response.headers.get("server-timing"))}


@contextmanager
def running_cluster(router: str, args) -> Iterator[httpx.Client]:
    """The profile ``args.profile`` with ``router`` on its pool, and a client of it; stopped on exit."""
    overrides = [*ROUTER_OVERRIDES.get(router, [f"pools.il25-qa.routing.policy={router}"]),
                 f"documents.store.data_dir={args.data_dir}/{router}-{int(time.time())}"]
    with LocalCluster(Path(args.profile), overrides, source=f"doc_qa {router}") as cluster:
        with httpx.Client(base_url=cluster.url, timeout=1800) as client:
            yield client


def run_router(router: str, args, texts: list[str]) -> dict:
    with running_cluster(router, args) as client:
        docs = []
        for text in tqdm(texts, desc=f"{router}: upload", file=sys.stderr):
            response = client.post("/v1/documents", json={"text": text, "model": MODEL})
            response.raise_for_status()
            docs.append(response.json())
        # Round-robin: every document's question k before any question k+1,
        # `concurrency` requests in flight.
        schedule = [(d, q) for q in range(args.questions) for d in range(len(docs))]
        results: dict[tuple[int, int], dict] = {}
        bar = tqdm(total=len(schedule), desc=f"{router}: questions", file=sys.stderr)
        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            for wave_start in range(0, len(schedule), len(docs)):
                wave = schedule[wave_start:wave_start + len(docs)]
                futures = {pool.submit(ask_streaming, client, docs[d]["id"], QUESTIONS[q % len(QUESTIONS)]): (d, q)
                           for d, q in wave}
                for future, key in futures.items():
                    results[key] = future.result()
                    bar.update(1)
        wall = time.perf_counter() - started
        bar.close()
        restarts = replica_restarts()
    cold = [results[(d, 0)]["ttft_s"] for d in range(len(docs))]
    warm = [results[(d, q)]["ttft_s"] for d in range(len(docs)) for q in range(1, args.questions)]
    follow_ups = [(d, q) for d in range(len(docs)) for q in range(1, args.questions)]
    on_holder = sum(results[(d, q)]["replica"] == results[(d, 0)]["replica"] for d, q in follow_ups)
    return {
        "router": router,
        "documents": len(docs),
        "document_tokens": [doc["tokens"][MODEL] for doc in docs],
        "questions_per_document": args.questions,
        "cold_ttft_s_median": statistics.median(cold),
        "warm_ttft_s_median": statistics.median(warm),
        "warm_ttft_s_p90": sorted(warm)[int(0.9 * (len(warm) - 1))],
        "cold_over_warm": statistics.median(cold) / statistics.median(warm),
        "follow_ups_on_holding_replica": on_holder / len(follow_ups),
        "questions_per_s": len(schedule) / wall,
        "replicas_used": sorted({r["replica"] for r in results.values()}),
        # Where a warm question's time to its first item went (docs/operations.md, Server-Timing).
        "warm_server_timing_ms_median": _span_medians([results[k]["server_timing_ms"] for k in follow_ups]),
        "cold_replicas": [results[(d, 0)]["replica"] for d in range(len(docs))],
        "replica_restarts": restarts,
    }


def _span_medians(timings: list[dict[str, float]]) -> dict[str, float]:
    """Median of each Server-Timing span over the requests that report it."""
    names = dict.fromkeys(name for timing in timings for name in timing)
    return {name: round(statistics.median(t[name] for t in timings if name in t), 3) for name in names}


def run(args, routers: list[str], on_result=lambda row: None, on_rows=lambda rows: None) -> list[dict]:
    """Every router in turn on the profile ``args.profile``; the same documents for each."""
    texts = document_texts(Path(args.profile), args.documents, args.document_tokens)
    rows = []
    for router in routers:
        rows.append(run_router(router, args, texts))
        on_result(rows[-1])
        on_rows(rows)
    return rows


def plot(rows: list[dict], path: Path) -> None:
    """Cold and warm TTFT per router (log scale) beside the share of follow-ups on the holding replica."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    names = [r["router"] for r in rows]
    x = range(len(rows))
    ax1.bar([i - 0.2 for i in x], [r["cold_ttft_s_median"] for r in rows], width=0.4, label="cold (1st question)")
    ax1.bar([i + 0.2 for i in x], [r["warm_ttft_s_median"] for r in rows], width=0.4, label="warm (follow-ups)")
    ax1.set_xticks(list(x), names)
    ax1.set_ylabel("median TTFT (s)")
    ax1.set_yscale("log")
    ax1.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    doc_tokens = statistics.median(t for row in rows for t in row["document_tokens"])
    ax1.set_title(f"Time to first token, {doc_tokens / 1000:.0f}k-token documents")
    ax2.bar(list(x), [100 * r["follow_ups_on_holding_replica"] for r in rows])
    ax2.set_xticks(list(x), names)
    ax2.set_ylabel("% follow-ups on the holding replica")
    ax2.set_ylim(0, 105)
    ax2.set_title("Document affinity")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
