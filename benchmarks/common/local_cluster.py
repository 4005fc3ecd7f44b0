"""The real stack (Ray, Serve, pools, ingress) for one profile, started in this process for a measurement."""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.common.ports import free_loopback_port
from benchmarks.common.progress import progress
from benchmarks.common.replicas import replica_restarts


class LocalCluster:
    """``with LocalCluster(profile, overrides) as cluster``: the cluster up, its URL and config; stopped on exit.

    The ingress and the metrics exporter listen on free loopback ports, so a
    benchmark never collides with a cluster already running here.
    """

    def __init__(self, profile: Path, overrides: list[str] | None = None, source: str = "validate"):
        self.port = free_loopback_port()
        self.profile = Path(profile)
        self.overrides = [f"ingress.port={self.port}", *(overrides or [])]
        self.url = f"http://127.0.0.1:{self.port}"
        self.source = source

    def __enter__(self) -> "LocalCluster":
        from cluster.cli import start_cluster
        from cluster.config import load_config

        self.config = load_config(self.profile, self.overrides)
        progress(f"starting {self.profile.name} ...", self.source)
        started = time.perf_counter()
        self.metrics_port = free_loopback_port()
        start_cluster(self.config, str(self.profile), self.overrides, address=None,
                      metrics_port=self.metrics_port)
        self.startup_s = time.perf_counter() - started
        progress(f"cluster up in {self.startup_s:.0f} s", self.source)
        return self

    def replica_restarts(self) -> dict[str, int]:
        return replica_restarts()

    def __exit__(self, *exc) -> None:
        import ray
        from ray import serve

        serve.shutdown()
        ray.shutdown()
        progress("cluster stopped", self.source)
