"""The clean stop's sweep: what outlives Ray's shutdown is found and killed, in bounded time."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from cluster import shutdown

# Named as vLLM names its processes (setproctitle, a Ray dependency), so the sweep counts them as the cluster's.
ENGINE_TITLE = "import setproctitle; setproctitle.setproctitle('VLLM::Worker_TP0'); "
STUBBORN = ENGINE_TITLE + "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(120)"


def _spawn(code: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "up"  # running, its SIGTERM handler installed
    return proc


def test_a_process_that_ignores_sigterm_is_killed_and_reported(monkeypatch):
    monkeypatch.setattr(shutdown, "GRACE_S", 0.5)
    stubborn = _spawn(STUBBORN)
    started = time.monotonic()
    killed = shutdown.stop_cluster(timeout_s=10)
    assert time.monotonic() - started < 10
    assert any(line.startswith(f"{stubborn.pid} ") for line in killed), killed
    assert stubborn.wait(timeout=5) == -9


def test_a_process_that_ends_within_the_grace_is_not_killed(monkeypatch):
    monkeypatch.setattr(shutdown, "GRACE_S", 5.0)
    polite = _spawn(ENGINE_TITLE + "import time; print('up', flush=True); time.sleep(1)")
    killed = shutdown.stop_cluster(timeout_s=10)
    assert killed == []
    assert polite.wait(timeout=5) == 0


def test_started_processes_include_engine_descendants_only():
    engine = _spawn(ENGINE_TITLE + "import time; print('up', flush=True); time.sleep(30)")
    # Not the cluster's: e.g. a Redis server a test started.
    other = _spawn("import time; print('up', flush=True); time.sleep(30)")
    try:
        started = shutdown.started_processes()
        assert psutil.Process(engine.pid) in started
        assert psutil.Process(other.pid) not in started
    finally:
        for proc in (engine, other):
            proc.kill()
            proc.wait()
