"""``open_store``: the configured backend."""

from __future__ import annotations

import os
from typing import Mapping

from cluster.config.documents import DocumentStoreConfig
from deployments.documents.backends.sqlite import SQLiteDocumentStore
from deployments.documents.store import DocumentStore


def open_store(config: DocumentStoreConfig, env: Mapping[str, str] | None = None) -> DocumentStore:
    """The configured backend, ready to use. Redis is imported only when
    configured, so an SQLite deployment needs no Redis client installed.

    ``env`` (default: this process's) holds the variable ``password_env`` names."""
    if config.backend == "sqlite":
        return SQLiteDocumentStore(config.data_dir, config.limits, timeout_s=config.timeout_s)
    from deployments.documents.backends.redis import RedisDocumentStore

    assert config.url is not None  # guaranteed by DocumentStoreConfig
    password = None
    if config.password_env is not None:
        env = os.environ if env is None else env
        if config.password_env not in env:
            # A missing Secret would otherwise surface as NOAUTH on the first upload.
            raise ValueError(
                f"documents.store.password_env names {config.password_env}, which is not set "
                "in this process's environment"
            )
        password = env[config.password_env]
    return RedisDocumentStore(
        config.url, config.limits, key_prefix=config.key_prefix, timeout_s=config.timeout_s,
        password=password,
    )
