"""The chart's log setting puts Serve's and vLLM's logs where `kubectl logs` reads them.

A Ray pod's container runs `ray start --block` (KubeRay's command); `kubectl
logs` shows that process's stdout and stderr. This starts the same command
with the environment the chart gives the head container, deploys a small Serve
app through a driver, and reads the `ray start` process's output: a line
logged by a Serve replica, a line it prints, and a line from a process it
starts (as a pool replica starts vLLM's engine core) logged through vLLM's own
logger must all be there. Without the chart's setting they are not (they go to
files under the session's logs directory), so the setting is what does it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest

from tests.helm.rendering import CHART, helm, render, the
from benchmarks.common.ports import free_loopback_port

pytestmark = pytest.mark.e2e

# The driver: a Serve app whose replica logs three ways, called once.
DRIVER = r"""
import logging, subprocess, sys
import ray
from ray import serve

address, marker = sys.argv[1], sys.argv[2]
ENGINE = ("from vllm.logger import init_logger; "
          f"init_logger('vllm.v1.engine.core').info('engine {marker}')")

@serve.deployment(ray_actor_options={"num_cpus": 0})
class Speaker:
    def __call__(self) -> str:
        logging.getLogger("ray.serve").warning("serve %s", marker)
        print(f"print {marker}", flush=True)
        # vLLM's engine core is a child process of the replica that inherits
        # its stdout/stderr; so is this one.
        subprocess.run([sys.executable, "-c", ENGINE], check=True)
        return "ok"

ray.init(address=address)
serve.start(proxy_location="Disabled")
assert serve.run(Speaker.bind(), name="logs", route_prefix=None).remote().result(timeout_s=240) == "ok"
serve.shutdown()
"""


def chart_ray_env() -> dict[str, str]:
    """The literal RAY_* variables the chart sets on the head container."""
    docs = render(helm.Chart.load(str(CHART)), {})
    head = the(docs, "RayService")["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    (container,) = [c for c in head["containers"] if c["name"] == "ray-head"]
    env = {e["name"]: e["value"] for e in container.get("env", []) if e["name"].startswith("RAY_") and "value" in e}
    assert env.get("RAY_LOG_TO_STDERR") == "1", env
    return env


def stop(process: subprocess.Popen) -> None:
    """Stop `ray start --block` and what it started (only those: other Ray clusters run beside)."""
    try:
        family = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    _, alive = psutil.wait_procs(family, timeout=15)
    for proc in alive:
        proc.kill()


@pytest.fixture(scope="module")
def chart_env() -> dict[str, str]:
    return chart_ray_env()


@pytest.mark.parametrize("with_chart_env", [True, False], ids=["chart-env", "without"])
def test_replica_and_engine_logs_reach_the_containers_output(chart_env, with_chart_env, tmp_path):
    marker = uuid.uuid4().hex
    # Ray's socket paths must stay short: a temp dir under /tmp, not pytest's.
    temp_dir = Path(tempfile.mkdtemp(prefix="rl", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_LOG_TO_STDERR", "RAY_SERVE_LOG_TO_STDERR"))}
    # Token auth is KubeRay's business in the chart; this test is about logs.
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    if with_chart_env:
        env.update(chart_env)
    port = free_loopback_port()
    log_path = tmp_path / "container.log"
    with log_path.open("wb") as container_log:
        ray_start = subprocess.Popen(
            [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
             "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
             f"--ray-client-server-port={free_loopback_port()}", f"--metrics-export-port={free_loopback_port()}",
             f"--dashboard-agent-listen-port={free_loopback_port()}", f"--temp-dir={temp_dir}"],
            stdout=container_log, stderr=subprocess.STDOUT, env=env,
        )
    try:
        # `ray start` prints this once the node is up (then blocks, as in the pod).
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in log_path.read_text(errors="replace"):
            assert ray_start.poll() is None, f"ray start exited: {log_path.read_text(errors='replace')[-3000:]}"
            assert time.monotonic() < deadline, "ray start did not come up in 180 s"
            time.sleep(0.5)
        driver = subprocess.run([sys.executable, "-c", DRIVER, f"127.0.0.1:{port}", marker],
                                env=env, capture_output=True, text=True, timeout=420)
        assert driver.returncode == 0, driver.stdout[-3000:] + driver.stderr[-3000:]
        expected = [f"serve {marker}", f"print {marker}", f"engine {marker}"]
        # The replica answered after writing all three; the raylet passes them
        # on as they come. Poll the container's output for them.
        deadline = time.monotonic() + 30
        while True:
            output = log_path.read_text(errors="replace")
            missing = [line for line in expected if line not in output]
            if not missing or not with_chart_env or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        session_logs = "".join(p.read_text(errors="replace") for p in (temp_dir / "session_latest" / "logs").rglob("*")
                               if p.is_file() and p.suffix in {".log", ".out", ".err"})
        if with_chart_env:
            assert missing == [], f"not in `kubectl logs`: {missing}\n--- output:\n{output[-4000:]}"
            # Serve's own format: level, deployment, replica.
            (line,) = [line for line in output.splitlines() if f"serve {marker}" in line]
            assert "WARNING" in line and "Speaker" in line
        else:
            # Ray's default: in files that die with the pod, not on the container's output.
            assert [line for line in expected if line in output] == []
            assert all(line in session_logs for line in expected), "Ray's default no longer writes log files"
    finally:
        stop(ray_start)
        shutil.rmtree(temp_dir, ignore_errors=True)
