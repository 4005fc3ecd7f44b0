"""Document QA: cold vs warm time to first token, affinity, throughput, by router.

For each replica router (ours: bounded-load document affinity; Serve's
default power-of-two; Ray Serve LLM's PrefixCacheAffinityRouter) the script
starts the cluster from benchmarks/profiles/doc-qa-cpu.yaml (one pool, two
replicas, KV capped near three 16k documents per replica), uploads N
documents of ~16k tokens and asks Q questions about each, round-robin over
the documents with a few requests in flight, as a QA front end would.

Per router it reports: TTFT of each document's first question (cold), of the
later ones (warm), the share of follow-ups answered by the replica that
answered the document's first question, and questions per second.

    .venv/bin/python benchmarks/doc_qa.py --documents 6 --questions 5

Writes benchmarks/results/doc_qa.json and doc_qa.png.

With ``--warm`` it measures instead what a warm-up at upload buys: the first
question's TTFT on documents uploaded cold and with ``"warm": true`` (asked
once the warm-up is ready), against a follow-up's (doc_qa_warm.json):

    .venv/bin/python benchmarks/doc_qa.py --warm --documents 6
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.gpu.harness import replica_restarts  # noqa: E402
from benchmarks.common.ports import free_loopback_port  # noqa: E402

PROFILE = REPO / "benchmarks" / "profiles" / "doc-qa-cpu.yaml"
MODEL = "internlm2_5-7b-chat-1m"
ROUTERS = ("affinity", "power_of_two", "prefix_cache")
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
            "pool": response.headers.get("x-pool")}


@contextmanager
def running_cluster(router: str, args) -> Iterator[httpx.Client]:
    """The profile's cluster with ``router`` on its pool, and a client of it; stopped on exit."""
    import ray
    from ray import serve

    from cluster.cli import start_cluster
    from cluster.config import load_config

    port = free_loopback_port()
    overrides = [f"ingress.port={port}", f"pools.il25-qa.routing.policy={router}",
                 f"documents.store.data_dir={args.data_dir}/{router}-{int(time.time())}"]
    profile = Path(getattr(args, "profile", PROFILE))
    config = load_config(profile, overrides)
    print(f"[doc_qa] {router}: starting the cluster ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    start_cluster(config, str(profile), overrides, address=None, metrics_port=free_loopback_port())
    print(f"[doc_qa] {router}: up in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=1800)
    try:
        yield client
    finally:
        client.close()
        serve.shutdown()
        ray.shutdown()


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
        "replica_restarts": restarts,
    }


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


def run(args, routers: list[str], on_result=lambda row: None, on_rows=lambda rows: None) -> list[dict]:
    """Every router in turn on the profile ``args.profile``; the same documents for each."""
    from cluster.config import load_config
    from deployments.tokens import PromptTokenizer

    config = load_config(Path(args.profile))
    tokenizer = PromptTokenizer(MODEL, config.models[MODEL])
    texts = [document_text(i, args.document_tokens, tokenizer) for i in range(args.documents)]
    rows = []
    for router in routers:
        rows.append(run_router(router, args, texts))
        on_result(rows[-1])
        on_rows(rows)
    return rows


def plot(rows: list[dict], path: Path) -> None:
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
        from cluster.config import load_config
        from deployments.tokens import PromptTokenizer

        tokenizer = PromptTokenizer(MODEL, load_config(PROFILE).models[MODEL])
        result = run_warm(args, [document_text(i, args.document_tokens, tokenizer) for i in range(args.documents)])
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
