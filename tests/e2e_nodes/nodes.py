"""Ray nodes on one machine, each started with ``ray start`` as on separate hosts, and stopped by their own processes.

Every node gets its own temp dir, which each of its processes names on its
command line; that, and their children (vLLM's engine processes rename
themselves), is how a node is found and stopped. Never ``ray stop``: it stops
every Ray on the machine, other people's clusters included.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.common.ports import free_loopback_port
from cluster.cli import RAY_SINGLE_MACHINE_ENV
from tests.support import lanes

RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT_S = 300


@dataclass
class RayNode:
    name: str
    temp_dir: Path
    # Text on the command line of a process of this node that names no temp dir
    # (the head's Ray Client server, found by its own port).
    other_markers: tuple[str, ...] = ()
    metrics_port: int = 0

    def processes(self) -> list[psutil.Process]:
        """This node's processes and all their descendants."""
        markers = (str(self.temp_dir), *self.other_markers)
        found: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter(["cmdline"]):
            try:
                cmdline = " ".join(proc.info["cmdline"] or [])
                if any(marker in cmdline for marker in markers):
                    found[proc.pid] = proc
                    for child in proc.children(recursive=True):
                        found[child.pid] = child
            except psutil.Error:
                continue
        return list(found.values())

    def kill(self) -> None:
        """Take the node away at once, as a host that dies (SIGKILL to every process of it)."""
        procs = self.processes()
        for proc in procs:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.Error:
                continue
        psutil.wait_procs(procs, timeout=30)

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL what is left after ``grace_s``."""
        procs = self.processes()
        for proc in procs:
            try:
                proc.terminate()
            except psutil.Error:
                continue
        _, alive = psutil.wait_procs(procs, timeout=grace_s)
        for proc in alive:
            try:
                proc.kill()
            except psutil.Error:
                continue
        psutil.wait_procs(alive, timeout=10)


def ray_env(token: str) -> dict[str, str]:
    """Token auth on every node and client: the nodes listen on every interface.

    Not inherited from this process: a single-machine local cluster that an
    earlier test package started here leaves Ray's one-machine switch and a
    token file in the environment; a worker node would refuse to join."""
    inherited = {k: v for k, v in os.environ.items() if k not in (RAY_SINGLE_MACHINE_ENV, "RAY_AUTH_TOKEN_PATH")}
    return {**inherited, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
            "RAY_USAGE_STATS_ENABLED": "0",
            # Metrics every second, not every 10: tests poll an engine's gauges as a readiness check.
            "RAY_metrics_report_interval_ms": "1000",
            **lanes.RAY_WORKER_ENV}


def start_node(name: str, base: Path, env: dict[str, str], *, head_port: int | None = None,
               head_address: str | None = None, num_cpus: int, resources: dict[str, float]) -> RayNode:
    temp_dir = base / name
    temp_dir.mkdir(parents=True, exist_ok=True)
    args = [RAY, "start", "--node-ip-address=127.0.0.1", f"--temp-dir={temp_dir}", f"--num-cpus={num_cpus}",
            f"--resources={json.dumps(resources)}", "--disable-usage-stats",
            f"--dashboard-agent-listen-port={free_loopback_port()}",
            f"--metrics-export-port={(metrics_port := free_loopback_port())}",
            "--object-store-memory=200000000"]
    markers: tuple[str, ...] = ()
    if head_port is not None:
        client_port = free_loopback_port()
        args += ["--head", f"--port={head_port}", "--include-dashboard=false",
                 f"--dashboard-port={free_loopback_port()}", f"--ray-client-server-port={client_port}"]
        markers = (f"--port={client_port} --mode=proxy",)
    else:
        args += [f"--address={head_address}"]
    node = RayNode(name, temp_dir, markers, metrics_port)
    try:
        subprocess.run(args, env=env, check=True, timeout=START_TIMEOUT_S, capture_output=True, text=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        node.stop()
        raise RuntimeError(f"ray start of {name} failed: {getattr(exc, 'stderr', '')}") from exc
    return node


def node_id_with(resource: str, timeout_s: float = 120) -> str:
    """The id of the alive node that advertises ``resource`` (the connected driver's view)."""
    import ray

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for node in ray.nodes():
            if node["Alive"] and resource in node["Resources"]:
                return node["NodeID"]
        time.sleep(0.5)
    raise AssertionError(f"no node with resource {resource} joined within {timeout_s} s")
