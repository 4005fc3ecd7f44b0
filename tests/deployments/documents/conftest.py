"""Fixtures: every contract test runs against SQLite and a real Redis server.

The Redis server is Debian's `redis-server` (installed by `make redis-server`),
started here on 127.0.0.1 with a free port and no persistence, once per
session. Without the binary the Redis params skip, so a clone without root
still passes.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Callable

import pytest

from cluster.config.documents import StoreLimits
from deployments.documents.store import DocumentStore
from tests.support.redis_server import redis_server

@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


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
