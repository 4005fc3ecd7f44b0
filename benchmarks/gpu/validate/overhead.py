"""Stage ``overhead``, and the serve stage's (c2): what our path adds to a short request.

Our HTTP API against the pool's Serve handle (and, with Serve's direct
ingress, the ingress replica's own port), 1k-token requests interleaved.
"""

from __future__ import annotations

import os
import statistics
import time

from benchmarks.common.direct_pool import DirectPool
from benchmarks.common.http_timing import stream_completion
from benchmarks.common.local_cluster import LocalCluster
from benchmarks.common.progress import progress
from benchmarks.common.prompts import random_ids
from benchmarks.gpu.checkpoints import use_full_checkpoint
from benchmarks.gpu.stage_log import StageLog
from benchmarks.gpu.validated_models import DEFAULT_MODEL


def short_overhead(client, pool: str, repeats: int, model: str = DEFAULT_MODEL) -> dict:
    """(c2) 1k-token, max_tokens=1 requests, interleaved and each cold: our HTTP API vs the pool's Serve handle.

    With Serve's direct ingress on (``ingress.direct_ingress``) a third path is timed in the same rounds:
    the ingress replica's own HTTP server (what a load balancer in front of
    the replicas sends to), which skips Serve's proxy.
    """
    import httpx

    from cluster.cli import APP_NAME
    from cluster.direct_ingress import ingress_replica_urls
    from deployments.engines import pool_deployment_name

    replica_urls = ingress_replica_urls(APP_NAME)
    replica_client = httpx.Client(base_url=replica_urls[0], timeout=3600) if replica_urls else None
    direct = DirectPool(pool_deployment_name(pool), APP_NAME, model)
    times: dict[str, list[float]] = {"ours": [], "engine": [], "ours_direct_ingress": []}
    for i in range(repeats + 2):
        seed = 1000 + 3 * i
        round_ = {"engine": direct.complete(random_ids(1024, seed=seed))}
        for name, http in (("ours", client), ("ours_direct_ingress", replica_client)):
            if http is None:
                continue
            seed += 1
            t0 = time.perf_counter()
            response = http.post("/v1/completions", json={"model": model, "prompt": random_ids(1024, seed=seed),
                                                           "max_tokens": 1})
            round_[name] = time.perf_counter() - t0
            assert response.status_code == 200, response.text
        if i >= 2:  # the first rounds warm every path up
            for name, seconds in round_.items():
                times[name].append(seconds * 1000)
    direct.close()
    engine_ms = statistics.median(times["engine"])
    result = {
        "prompt_tokens": 1024, "repeats": len(times["ours"]),
        "ours_ms": statistics.median(times["ours"]), "engine_ms": engine_ms,
        "ratio": statistics.median(times["ours"]) / engine_ms,
        "ours_ms_all": times["ours"], "engine_ms_all": times["engine"],
        "engine_path": "Serve handle to the pool deployment from the driver (no HTTP proxy, no ingress)",
        "serve_throughput_optimized": os.environ.get("RAY_SERVE_THROUGHPUT_OPTIMIZED", "0"),
        "direct_ingress": bool(replica_client),
    }
    if replica_client:
        result.update({
            "ours_direct_ingress_ms": statistics.median(times["ours_direct_ingress"]),
            "direct_ingress_ratio": statistics.median(times["ours_direct_ingress"]) / engine_ms,
            "ours_direct_ingress_ms_all": times["ours_direct_ingress"],
            "direct_ingress_url": replica_urls[0],
        })
        replica_client.close()
    progress(f"short overhead: ours {result['ours_ms']:.1f} ms"
             + (f", direct ingress {result['ours_direct_ingress_ms']:.1f} ms" if replica_client else "")
             + f" vs engine {engine_ms:.1f} ms")
    return result


def stage_overhead(args, log: StageLog) -> None:
    """(c2) alone, with Serve's direct ingress on: proxy path, replica's own port, engine."""
    import httpx

    from cluster.direct_ingress import skip_draining_without_balancer

    skip_draining_without_balancer()
    # The overhead profile is InternLM2.5's short pool, whatever --model says.
    log.put("checkpoints_s", use_full_checkpoint(args.models))
    with LocalCluster(args.overhead_profile, ["ingress.direct_ingress=true"]) as cluster:
        log.put("startup_s", round(cluster.startup_s, 1))
        short = cluster.config.pool("il25-short")
        client = httpx.Client(base_url=cluster.url, timeout=3600)
        stream_completion(client, {"model": DEFAULT_MODEL, "prompt": random_ids(1024, seed=2), "max_tokens": 1})
        log.put("short_overhead", short_overhead(client, short.name, args.overhead_repeats))
        log.put("replica_restarts", cluster.replica_restarts())
