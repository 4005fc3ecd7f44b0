"""The ingress's own work per question on a long stored document (no cluster).

A warm question should cost the ingress only its own tokens: the document's
prefix ids were counted at upload. This times, per question on a stored
document of N tokens, each step the ingress runs before it hands the request
to the pool's Serve handle, with the ingress's real objects (the cpu-demo
profile's tokenizer, a SQLite document store in a temporary directory):

  prefix     the document's prefix ids (store read and decode, or the
             ingress's cache of them)
  question   the question's ids appended (chat template, question tokens)
  request    Ray Serve LLM's CompletionRequest built around the ids
  serialize  the request pickled as Ray's serializer does (cloudpickle), what
             the handle call pays to reach the replica

The stored ids are synthetic (random ids in the vocabulary): the warm path
never reads the document's text.

    .venv/bin/python -m benchmarks.cpu.warm_path --label after

Writes (merges its label into) benchmarks/results/warm_path_cpu.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "deployments" / "cpu-demo.yaml"
MODEL = "internlm2_5-7b-chat-1m"
QUESTION = "Which party carries the obligations in clause 4 and by which day must it deliver?"


def _ingress(data_dir: str):
    """The cpu-demo ingress's document service and request path, without Ray (no pool handles)."""
    from cluster.config import load_config
    from deployments.ingress.service import Ingress

    cluster = load_config(PROFILE, overrides=[f"documents.store.data_dir={data_dir}",
                                              "documents.store.backend=sqlite"])
    limits = cluster.documents.store.limits
    limits.max_document_tokens = max(limits.max_document_tokens, 1 << 21)
    return Ingress(cluster.model_dump(mode="json"), {})


def _store_document(ingress, tokens: int):
    """A stored document whose prefix ids for MODEL are ``tokens`` random ids; its meta."""
    from deployments.documents.layout import encode_ids
    from deployments.documents.records import Document

    service = ingress.documents
    vocab = ingress.path.tokenizers[MODEL].vocab_size
    rng = random.Random(tokens)
    ids = [rng.randrange(3, vocab) for _ in range(tokens)]
    doc = Document.new(f"document of {tokens} tokens", owner=None, metadata={})
    doc = doc.model_copy(update={"tokens": {MODEL: tokens}, "pools": {MODEL: "il25-long"}})
    service._store.put(doc, token_ids={service._layout_keys[MODEL]: encode_ids(ids)})
    return doc.meta()


async def _one_question(ingress, meta, request) -> dict[str, float]:
    """One question's ingress steps, timed (seconds)."""
    import ray.cloudpickle

    service, path = ingress.documents, ingress.path
    tokenizer = path.tokenizers[MODEL]
    marks = {}
    t0 = time.perf_counter()
    prefix = await service._prefix_ids(request, meta, MODEL)
    t1 = time.perf_counter()
    ids = service._layout.question_ids(tokenizer, prefix, QUESTION)
    t2 = time.perf_counter()
    decision = path.bands.choose(MODEL, min(len(ids), path.bands.limit(MODEL) - 64), 16)
    engine_request = path.engine_request(MODEL, decision, ids, {"stream": True})
    t3 = time.perf_counter()
    ray.cloudpickle.dumps(engine_request)
    t4 = time.perf_counter()
    marks.update(prefix=t1 - t0, question=t2 - t1, request=t3 - t2, serialize=t4 - t3, total=t4 - t0)
    return marks


def measure(tokens_list: list[int], repeats: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as data_dir:
        ingress = _ingress(data_dir)
        request = SimpleNamespace(state=SimpleNamespace(principal=None, model=None))
        for tokens in tokens_list:
            meta = _store_document(ingress, tokens)
            samples = [asyncio.run(_one_question(ingress, meta, request)) for _ in range(repeats)]
            row = {"document_tokens": tokens, "repeats": repeats}
            for step in ("prefix", "question", "request", "serialize", "total"):
                row[f"{step}_ms"] = round(1000 * statistics.median(s[step] for s in samples), 3)
            rows.append(row)
            print(f"{tokens:>9} tokens: " + ", ".join(f"{k[:-3]} {v:.2f} ms" for k, v in row.items()
                                                     if k.endswith("_ms")), file=sys.stderr)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu.warm_path", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", required=True, help="the row set's name in the file (e.g. before, after)")
    parser.add_argument("--tokens", default="131072,1048000")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "warm_path_cpu.json"))
    args = parser.parse_args()
    rows = measure([int(t) for t in args.tokens.split(",")], args.repeats)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {"profile": str(PROFILE.relative_to(REPO))}
    results[args.label] = rows
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out} ({args.label})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
