"""Fixtures: every contract test runs against SQLite and a real Redis server.

The Redis server is Debian's `redis-server` (installed by `make redis-server`),
started here on 127.0.0.1 with a free port and no persistence, once per
session. Without the binary the Redis params skip, so a clone without root
still passes.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Callable

import pytest

from benchmarks.common.ports import free_loopback_port
from cluster.config.documents import StoreLimits
from deployments.documents.store import DocumentStore

READY_TIMEOUT_S = 10.0


def _wait_ready(proc: subprocess.Popen, url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                if client.ping():
                    return True
            except redis.RedisError:
                pass
            time.sleep(0.05)
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed; `make redis-server` (root) installs it")
    workdir = tmp_path_factory.mktemp("redis")
    # A free port can be taken between probe and bind; a few attempts cover it.
    for _ in range(3):
        port = free_loopback_port()
        url = f"redis://127.0.0.1:{port}/0"
        log = open(workdir / f"redis-{port}.log", "w+")
        proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(workdir)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if _wait_ready(proc, url):
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


class Backend:
    """Opens stores of one backend over the same data, so tests can reopen."""

    def __init__(self, name: str, opener: Callable[[StoreLimits | None], DocumentStore]):
        self.name = name
        self._opener = opener
        self._opened: list[DocumentStore] = []

    def open(self, limits: StoreLimits | None = None) -> DocumentStore:
        store = self._opener(limits)
        self._opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self._opened:
            store.close()


@pytest.fixture(params=["sqlite", "redis"])
def backend(request, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        from deployments.documents.backends.sqlite import SQLiteDocumentStore

        b = Backend("sqlite", lambda limits: SQLiteDocumentStore(tmp_path / "docs", limits))
    else:
        from deployments.documents.backends.redis import RedisDocumentStore

        url = request.getfixturevalue("redis_url")
        # A fresh prefix per test isolates tests on the shared server
        # without flushing it.
        prefix = f"test:{uuid.uuid4().hex}:"
        b = Backend("redis", lambda limits: RedisDocumentStore(url, limits, key_prefix=prefix))
    yield b
    b.close_all()


@pytest.fixture
def store(backend: Backend) -> DocumentStore:
    return backend.open()
