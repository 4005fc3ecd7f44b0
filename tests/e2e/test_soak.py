"""Soak: 32 concurrent streaming clients for a bounded time (`make soak`).

Asserts no 5xx and no lost request (every request ends with [DONE], or is
refused with 429 + Retry-After and counted), and records memory of the
cluster's processes at the start and the end. Figures go to
benchmarks/results/soak.json; benchmarks/README.md quotes them.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.soak]

CLIENTS = 32
SECONDS = float(os.environ.get("SOAK_SECONDS", "300"))
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "soak.json"


def cluster_rss_mib() -> float:
    total = 0
    for proc in psutil.process_iter(["name", "cmdline", "memory_info"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if any(tag in cmd or tag in (proc.info.get("name") or "") for tag in ("ray::", "raylet", "VLLM", "gcs_server")):
            total += proc.info["memory_info"].rss if proc.info.get("memory_info") else 0
    return total / 2**20


def test_soak_streaming_clients(cluster):
    models = list(cluster.config.models)
    deadline = time.monotonic() + SECONDS
    lock = threading.Lock()
    tally = {"sent": 0, "done": 0, "refused_429": 0, "errors": [], "tokens": 0}

    def client_loop(index: int):
        model = models[index % len(models)]
        with httpx.Client(base_url=cluster.base_url, timeout=600) as client:
            while time.monotonic() < deadline:
                with lock:
                    tally["sent"] += 1
                body = {"model": model, "stream": True, "max_tokens": 32,
                        "messages": [{"role": "user", "content": f"client {index} says hello " * (1 + index % 8)}]}
                try:
                    with client.stream("POST", "/v1/chat/completions", json=body) as response:
                        if response.status_code == 429:
                            assert response.headers.get("retry-after")
                            with lock:
                                tally["refused_429"] += 1
                            time.sleep(float(response.headers["retry-after"]))  # the server asked for it
                            continue
                        lines = [line for line in response.iter_lines() if line.startswith("data:")]
                    events = [json.loads(line[len("data:"):]) for line in lines[:-1]]
                    # An error event is a top-level "error" key (generated text may
                    # itself say "error").
                    ok = response.status_code == 200 and lines and lines[-1] == "data: [DONE]" \
                        and not any("error" in event for event in events)
                    with lock:
                        if ok:
                            tally["done"] += 1
                            tally["tokens"] += len(lines) - 1
                        else:
                            tally["errors"].append((response.status_code, lines[-1:] if lines else None))
                except httpx.HTTPError as exc:
                    with lock:
                        tally["errors"].append(("transport", repr(exc)))

    rss_start = cluster_rss_mib()
    started = time.monotonic()
    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SECONDS + 900)
    elapsed = time.monotonic() - started
    rss_end = cluster_rss_mib()
    figures = {
        "clients": CLIENTS, "seconds": round(elapsed, 1), "requests": tally["sent"], "completed": tally["done"],
        "refused_429": tally["refused_429"], "errors": len(tally["errors"]),
        "requests_per_s": round(tally["done"] / elapsed, 2), "stream_chunks": tally["tokens"],
        "cluster_rss_mib_start": round(rss_start), "cluster_rss_mib_end": round(rss_end),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    assert not any(t.is_alive() for t in threads), "a client never finished"
    assert tally["errors"] == [], tally["errors"][:5]
    assert tally["done"] + tally["refused_429"] == tally["sent"], "requests were lost"
    assert tally["done"] > 0
