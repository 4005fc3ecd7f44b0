"""``open_store``: the configured backend."""

from __future__ import annotations

from cluster.config.documents import DocumentStoreConfig
from deployments.documents.backends.sqlite import SQLiteDocumentStore
from deployments.documents.store import DocumentStore


def open_store(config: DocumentStoreConfig) -> DocumentStore:
    """The configured backend, ready to use. Redis is imported only when
    configured, so an SQLite deployment needs no Redis client installed."""
    if config.backend == "sqlite":
        return SQLiteDocumentStore(config.data_dir, config.limits, timeout_s=config.timeout_s)
    from deployments.documents.backends.redis import RedisDocumentStore

    assert config.url is not None  # guaranteed by DocumentStoreConfig
    return RedisDocumentStore(
        config.url, config.limits, key_prefix=config.key_prefix, timeout_s=config.timeout_s
    )
