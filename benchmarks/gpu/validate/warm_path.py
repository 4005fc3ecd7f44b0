"""Stages ``warm_path`` and ``short_overhead_http``: our API against ``vllm serve`` on one GPU (issue 27).

Both servers get the same checkpoint and the pool's engine arguments
(``benchmarks/common/vllm_serve.py`` derives the flags from the profile), and
are timed by the same client code (``http_timing.stream_ttft``).

warm_path: per document length, the document once, then ``--warm-questions``
follow-ups, each a question not asked before on the cached document, streaming.
Ours: upload, the first question (cold prefill), then the follow-ups through
``/v1/documents/{id}/ask`` via Serve's proxy (``ours``) and via the ingress
replica's own port (``ours_direct_ingress``), and the same kind of token-id
prompt ``vllm serve`` gets through our ``/v1/completions`` (``ours_completions``).
``vllm serve``: ``/v1/completions`` with exactly the ids our ask sends its
engine (the document's stored prefix + the question). Lengths that fit the
shared profile run with both servers up (0.45 of the GPU each), requests
alternating; longer ones with the GPU to one server at a time, ``vllm serve``
first. The JSON is rewritten after every request.

short_overhead_http: 1,024-token random id prompts, ``max_tokens: 1``,
non-streaming, interleaved: our API through Serve's proxy, through the ingress
replica's port, and ``vllm serve``. warm_path runs it while both are up.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

from benchmarks.common.document_qa import QUESTIONS, document_text
from benchmarks.common.http_timing import stream_ttft
from benchmarks.common.local_cluster import LocalCluster
from benchmarks.common.progress import progress
from benchmarks.common.prompts import random_ids
from benchmarks.common.vllm_serve import VllmServe
from benchmarks.gpu.checkpoints import use_full_checkpoint
from benchmarks.gpu.stage_log import StageLog

MAX_TOKENS = 8  # per question: TTFT is timed, the rest is recorded
OUR_ARMS = ("ours", "ours_direct_ingress", "ours_completions")
SHORT_PROMPT_TOKENS = 1024
# Template, question and answer tokens past the document a pool must hold.
QUESTION_ROOM = 512


def card_of(log: StageLog) -> str:
    gpu = log.data["versions"].get("gpu")
    return "cpu" if gpu in (None, "none") else gpu


def question(round_: int, arm: str) -> str:
    """Round ``round_``'s question for ``arm``: vllm serve gets ours' (the same ids); our other arms a new one each."""
    tag = {"vllm_serve": "ours"}.get(arm, arm)
    return f"{QUESTIONS[round_ % len(QUESTIONS)]} (round {round_}, {tag})"


class Document:
    """One synthetic document: its text, and the ids of the prompts our ask sends for it (the layout's own code)."""

    def __init__(self, config, model: str, tokens: int):
        from deployments.documents.layout import DocumentLayout
        from deployments.tokens import PromptTokenizer

        self.model, self.tokens = model, tokens
        self.tokenizer = PromptTokenizer(model, config.models[model])
        self.layout = DocumentLayout(config.documents.system_prompt)
        self.text = document_text(tokens // 1000, tokens, self.tokenizer)
        self.prefix = self.layout.prefix_ids(self.tokenizer, self.text)
        self.stop_token_ids = sorted(set(config.models[model].stop_token_ids))

    def prompt_ids(self, round_: int, arm: str) -> list[int]:
        return self.layout.question_ids(self.tokenizer, self.prefix, question(round_, arm))


class OursServer:
    """Our API for one document: upload, then questions by arm."""

    def __init__(self, cluster: LocalCluster, replica_url: str | None):
        import httpx

        self.model = next(iter(cluster.config.models))
        self.proxy = httpx.Client(base_url=cluster.url, timeout=3600)
        self.direct = httpx.Client(base_url=replica_url, timeout=3600) if replica_url else None
        self.doc_id: dict[int, str] = {}

    def upload(self, doc: Document) -> dict:
        started = time.perf_counter()
        response = self.proxy.post("/v1/documents", json={"text": doc.text, "model": doc.model})
        response.raise_for_status()
        body = response.json()
        self.doc_id[doc.tokens] = body["id"]
        counted = body["tokens"][doc.model]
        return {"upload_s": time.perf_counter() - started, "prefix_tokens": counted,
                "ids_match_client": counted == len(doc.prefix)}

    def arms(self) -> tuple[str, ...]:
        return OUR_ARMS if self.direct else ("ours", "ours_completions")

    def ask(self, doc: Document, round_: int, arm: str) -> dict:
        if arm == "ours_completions":
            return stream_ttft(self.proxy, "/v1/completions", {
                "model": doc.model, "prompt": doc.prompt_ids(round_, arm), "max_tokens": MAX_TOKENS, "temperature": 0})
        client = self.direct if arm == "ours_direct_ingress" else self.proxy
        return stream_ttft(client, f"/v1/documents/{self.doc_id[doc.tokens]}/ask", {
            "question": question(round_, arm), "max_tokens": MAX_TOKENS, "temperature": 0})


class VllmServeClient:
    """``vllm serve`` asked the prompts our ask sends its engine, as token ids."""

    def __init__(self, server: VllmServe):
        import httpx

        self.client = httpx.Client(base_url=server.url, timeout=3600)
        self.model = server.model

    def ask(self, doc: Document, round_: int, arm: str = "vllm_serve") -> dict:
        return stream_ttft(self.client, "/v1/completions", {
            "model": doc.model, "prompt": doc.prompt_ids(round_, arm), "max_tokens": MAX_TOKENS, "temperature": 0,
            "stop_token_ids": doc.stop_token_ids, "add_special_tokens": False})


def record(log: StageLog, doc: Document, arm: str, kind: str, result: dict) -> None:
    """One request's timing under ``samples[<tokens>][<arm>]``; the JSON is rewritten.

    A failed request is kept as it came (status, error) and left out of the medians.
    """
    if result.get("status") != 200:
        progress(f"{arm} {kind} at {doc.tokens:,} tokens failed: {result}")
    arms = log.data.setdefault("samples", {}).setdefault(str(doc.tokens), {})
    entry = arms.setdefault(arm, {"cold": None, "warm": []})
    if kind == "cold":
        entry["cold"] = result
    else:
        entry["warm"].append(result)
    log.flush()


def cold_and_warm(log: StageLog, doc: Document, servers: dict, questions: int, gap_s: float) -> None:
    """The cold question on each server, then ``questions`` rounds of follow-ups, arms alternating (order rotated).

    Each follow-up starts ``gap_s`` after the previous one ended: a server's
    work after answering (its engine's threads winding down) must not be
    charged to the next request, which may be the other server's.
    """
    for name, server in servers.items():
        if isinstance(server, OursServer):
            log.data.setdefault("uploads", {})[str(doc.tokens)] = server.upload(doc)
            result = server.ask(doc, 0, "ours")
        else:
            result = server.ask(doc, 0)
        record(log, doc, "ours" if isinstance(server, OursServer) else "vllm_serve", "cold", result)
        progress(f"{doc.tokens:,} tokens, cold {name}: TTFT {result.get('ttft_s')} s")
    arms = [(arm, server) for server in servers.values()
            for arm in (server.arms() if isinstance(server, OursServer) else ("vllm_serve",))]
    for round_ in range(1, questions + 1):
        shift = round_ % len(arms)
        for arm, server in arms[shift:] + arms[:shift]:
            time.sleep(gap_s)
            record(log, doc, arm, "warm", server.ask(doc, round_, arm))
    warm = log.data["samples"][str(doc.tokens)]
    progress(f"{doc.tokens:,} tokens, warm medians: "
             + ", ".join(f"{arm} {statistics.median(ttfts(s['warm'])):.3f} s"
                         for arm, s in warm.items() if ttfts(s["warm"])))


def ttfts(samples: list[dict]) -> list[float]:
    return [r["ttft_s"] for r in samples if r.get("ttft_s") is not None]


def median_spans(samples: list[dict]) -> dict[str, float]:
    """Median of each Server-Timing span over the answered samples (where a warm question's time goes)."""
    names = {name for r in samples if r.get("ttft_s") is not None for name in r.get("server_timing_ms", {})}
    return {name: statistics.median(r["server_timing_ms"][name] for r in samples
                                    if r.get("ttft_s") is not None and name in r.get("server_timing_ms", {}))
            for name in sorted(names)}


def warm_rows(data: dict) -> list[dict]:
    """Rows {tokens, ours_s, vllm_serve_s, ratio, card} (warm medians), with the other arms and the cold question.

    ``data`` is a stage file's (or several merged by the summary: ``samples``, ``modes``, ``documents``, ``card``).
    """
    rows = []
    for tokens, arms in sorted(data.get("samples", {}).items(), key=lambda kv: int(kv[0])):
        median = {arm: statistics.median(ttfts(s["warm"])) for arm, s in arms.items() if ttfts(s["warm"])}
        cold = {arm: s["cold"]["ttft_s"] for arm, s in arms.items() if s["cold"] and s["cold"].get("ttft_s")}
        base = median.get("vllm_serve")
        row = {"tokens": int(tokens), "ours_s": median.get("ours"), "vllm_serve_s": base,
               "ratio": median["ours"] / base if base and "ours" in median else None, "card": data.get("card"),
               "mode": data.get("modes", {}).get(tokens),
               "prefix_tokens": data.get("documents", {}).get(tokens, {}).get("prefix_tokens"),
               "questions": min((len(ttfts(s["warm"])) for s in arms.values()), default=0),
               "failed": sum(len(s["warm"]) - len(ttfts(s["warm"])) for s in arms.values())}
        for arm in ("ours_direct_ingress", "ours_completions"):
            row[f"{arm}_s"] = median.get(arm)
            row[f"{arm}_ratio"] = median[arm] / base if base and arm in median else None
        row["ours_server_timing_ms"] = median_spans(arms.get("ours", {}).get("warm", []))
        row.update({"cold_ours_s": cold.get("ours"), "cold_vllm_serve_s": cold.get("vllm_serve"),
                    "cold_ratio": cold["ours"] / cold["vllm_serve"] if len(cold) == 2 else None})
        rows.append(row)
    return rows


def short_overhead_http(log: StageLog, ours: OursServer | None, vllm: VllmServeClient | None, repeats: int,
                        gap_s: float) -> None:
    """1,024-token, max_tokens 1 requests, interleaved (order rotated), each a new prompt, ``gap_s`` apart;
    medians per path."""
    paths = {}
    if ours:
        paths["proxy"] = ours.proxy
        if ours.direct:
            paths["direct_ingress"] = ours.direct
    if vllm:
        paths["vllm_serve"] = vllm.client
    model = (ours or vllm).model
    names = list(paths)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats + 2):  # the first two rounds warm every path up
        shift = i % len(names)
        for j, name in enumerate(names[shift:] + names[:shift]):
            body = {"model": model, "prompt": random_ids(SHORT_PROMPT_TOKENS, seed=50_000 + 7 * i + j),
                    "max_tokens": 1, "temperature": 0}
            time.sleep(gap_s)
            started = time.perf_counter()
            response = paths[name].post("/v1/completions", json=body)
            elapsed_ms = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"short request via {name}: {response.status_code} {response.text[:300]}")
            if i >= 2:
                times[name].append(elapsed_ms)
        if i >= 2:
            log.put("short_overhead_http_samples_ms", times)
    median = {name: statistics.median(t) for name, t in times.items() if t}
    base = median.get("vllm_serve")
    rows = [{"path": name, "ours_ms": median[name], "vllm_serve_ms": base,
             "ratio": median[name] / base if base else None, "card": card_of(log),
             "prompt_tokens": SHORT_PROMPT_TOKENS, "repeats": len(times[name])}
            for name in ("proxy", "direct_ingress") if name in median]
    log.put("short_overhead_http", rows)
    progress("short overhead over HTTP: " + ", ".join(f"{k} {v:.1f} ms" for k, v in median.items()))


def wait_gpu_released(limit_s: float = 60, below_mib: int = 4096) -> float | None:
    """Seconds until the GPU's used memory falls under ``below_mib`` (a stopped engine gone); None without a GPU."""
    if not shutil.which("nvidia-smi"):
        return None
    started = time.perf_counter()
    while time.perf_counter() - started < limit_s:
        used = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True).stdout.split()
        if used and int(used[0]) < below_mib:
            break
        time.sleep(1)
    return round(time.perf_counter() - started, 1)


@contextmanager
def ours_up(log: StageLog, profile: Path, key: str):
    """Our cluster of ``profile`` (direct ingress on), a fresh document store; its start-up time under ``key``."""
    from cluster.cli import APP_NAME
    from cluster.direct_ingress import ingress_replica_urls, skip_draining_without_balancer

    skip_draining_without_balancer()
    overrides = [f"documents.store.data_dir=/tmp/longctx-data/warm-path-{int(time.time())}"]
    with LocalCluster(profile, overrides, source="warm_path") as cluster:
        log.data.setdefault("startup_s", {})[key] = round(cluster.startup_s, 1)
        urls = ingress_replica_urls(APP_NAME)
        ours = OursServer(cluster, urls[0] if urls else None)
        # First-request costs (connections, the engine's first step) are no question's.
        ours.proxy.post("/v1/completions", json={"model": ours.model, "prompt": random_ids(64, seed=1),
                                                 "max_tokens": 1}).raise_for_status()
        yield ours, cluster
        log.put("replica_restarts", cluster.replica_restarts())


@contextmanager
def vllm_serve_up(log: StageLog, config, results: Path, key: str, plugins: bool):
    server = VllmServe(config, config.pools[0], results / f"vllm-serve-{key}.log", plugins=plugins)
    log.data.setdefault("vllm_serve", {})[key] = server.describe()
    with server:
        log.data.setdefault("startup_s", {})[f"vllm_serve_{key}"] = round(server.startup_s, 1)
        client = VllmServeClient(server)
        client.client.post("/v1/completions", json={"model": server.model, "prompt": random_ids(64, seed=1),
                                                    "max_tokens": 1}).raise_for_status()
        yield client


def fits(config, tokens: int) -> bool:
    return tokens + QUESTION_ROOM <= config.pools[0].engine.max_model_len


def stage_warm_path(args, log: StageLog, overhead_only: bool = False) -> None:
    from cluster.config import load_config

    lengths = [] if overhead_only else args.warm_lengths
    arms = set(args.warm_arms.split(","))
    if not overhead_only:  # one file per command: warm_path-128k.json, warm_path-400k-ours.json, ...
        log.rename(f"{log.data['stage']}-" + "-".join(f"{t // 1000}k" for t in lengths)
                   + ("" if arms == {"ours", "vllm_serve"} else "-" + "-".join(sorted(arms))))
    log.put("card", card_of(log))
    log.put("checkpoints_s", use_full_checkpoint(args.models))
    shared_cfg, alone_cfg = load_config(args.warm_shared_profile), load_config(args.warm_profile)
    shared = [t for t in lengths if fits(shared_cfg, t)]
    alone = [t for t in lengths if t not in shared]
    if any(not fits(alone_cfg, t) for t in alone):
        raise SystemExit(f"lengths {alone} do not fit {args.warm_profile} ({alone_cfg.pools[0].engine.max_model_len})")
    log.put("profiles", {"shared": str(args.warm_shared_profile), "alone": str(args.warm_profile)})
    log.put("modes", {str(t): ("shared" if t in shared else "alone") for t in lengths})
    log.put("arms", sorted(arms))
    log.put("request_gap_s", args.request_gap_s)
    model = shared_cfg.pools[0].model
    # The documents are written and tokenized (seconds at 400k) while the first server loads.
    writer = ThreadPoolExecutor(1)
    futures = {t: writer.submit(Document, shared_cfg if t in shared else alone_cfg, model, t) for t in lengths}
    writer.shutdown(wait=False)

    def document(tokens: int) -> Document:
        doc = futures[tokens].result()
        log.data.setdefault("documents", {})[str(tokens)] = {"prefix_tokens": len(doc.prefix)}
        return doc

    plugins = args.vllm_serve_with_rope_plugin
    overhead = args.http_overhead_repeats if (shared or overhead_only) else 0
    if shared or overhead:
        with ExitStack() as stack:
            vllm = stack.enter_context(vllm_serve_up(log, shared_cfg, args.results, "shared", plugins)) \
                if "vllm_serve" in arms else None
            ours = stack.enter_context(ours_up(log, args.warm_shared_profile, "ours_shared"))[0] \
                if "ours" in arms else None
            for tokens in shared:
                servers = {name: s for name, s in (("vllm serve", vllm), ("ours", ours)) if s}
                cold_and_warm(log, document(tokens), servers, args.warm_questions, args.request_gap_s)
                log.put("warm_path", warm_rows(log.data))
            if overhead:
                short_overhead_http(log, ours, vllm, overhead, args.request_gap_s)
        log.data.setdefault("gpu_released_s", {})["shared"] = wait_gpu_released()
    for name in ("vllm_serve", "ours"):
        if not alone or name not in arms:
            continue
        with ExitStack() as stack:
            if name == "vllm_serve":
                server = stack.enter_context(vllm_serve_up(log, alone_cfg, args.results, "alone", plugins))
            else:
                server = stack.enter_context(ours_up(log, args.warm_profile, "ours_alone"))[0]
            for tokens in alone:
                cold_and_warm(log, document(tokens), {name: server}, args.warm_questions, args.request_gap_s)
                log.put("warm_path", warm_rows(log.data))
        log.data.setdefault("gpu_released_s", {})[name] = wait_gpu_released()
    log.put("warm_path", warm_rows(log.data))


def stage_short_overhead_http(args, log: StageLog) -> None:
    """short_overhead_http alone: both servers on the shared profile, no documents."""
    if not args.http_overhead_repeats:
        raise SystemExit("--http-overhead-repeats must be at least 1")
    stage_warm_path(args, log, overhead_only=True)
