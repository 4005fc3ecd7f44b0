"""Debian's ``redis-server`` on a free loopback port, for the tests that need a real Redis.

One starter for the document-store contract tests (no persistence, no
password) and the two-ingress e2e cluster (a password and the append-only
file on, as the Helm chart runs it). Skips when the binary is absent, so a
clone without root (``make redis-server``) still passes.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from benchmarks.common.ports import free_loopback_port

READY_TIMEOUT_S = 10.0


def ping(url: str, password: str | None = None) -> bool:
    import redis

    client = redis.Redis.from_url(url, password=password, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _ready(proc: subprocess.Popen, url: str, password: str | None) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while proc.poll() is None and time.monotonic() < deadline:
        if ping(url, password):
            return True
        time.sleep(0.05)
    return False


@contextmanager
def redis_server(workdir: Path, *, db: int = 0, password: str | None = None,
                 append_only: bool = False) -> Iterator[str]:
    """Start a server, yield its URL (without the password), stop it on exit."""
    pytest.importorskip("redis")
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed; `make redis-server` (root) installs it")
    extra = ["--requirepass", password] if password else []
    # A free port can be taken between probe and bind; a few attempts cover it.
    for _ in range(3):
        port = free_loopback_port()
        url = f"redis://127.0.0.1:{port}/{db}"
        log = open(workdir / f"redis-{port}.log", "w+")
        proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if append_only else "no", "--dir", str(workdir), *extra],
            stdout=log, stderr=subprocess.STDOUT,
        )
        if _ready(proc, url, password):
            break
        proc.kill()
        proc.wait(timeout=10)
        log.seek(0)
        output = log.read()
        log.close()
    else:
        pytest.fail(f"redis-server did not become ready:\n{output[-2000:]}")
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
