"""open_store: the configured backend."""

import pytest

from benchmarks.common.ports import free_loopback_port
from cluster.config.documents import DocumentStoreConfig, StoreLimits
from deployments.documents.backends.factory import open_store
from deployments.documents.backends.sqlite import SQLiteDocumentStore
from deployments.documents.errors import StoreUnavailable
from deployments.documents.store import DocumentStore


def test_defaults_open_sqlite(tmp_path):
    config = DocumentStoreConfig(data_dir=str(tmp_path / "d"))
    with open_store(config) as store:
        assert isinstance(store, SQLiteDocumentStore) and isinstance(store, DocumentStore)
        assert store.path.parent == tmp_path / "d" and store.limits == StoreLimits()


def test_unreachable_redis_is_unavailable():
    pytest.importorskip("redis")
    port = free_loopback_port()  # nothing listens there once the probe socket closed
    store = open_store(DocumentStoreConfig(backend="redis", url=f"redis://127.0.0.1:{port}/0", timeout_s=1))
    try:
        with pytest.raises(StoreUnavailable) as e:
            store.count()
        assert e.value.http_status == 503
    finally:
        store.close()


def test_a_missing_password_variable_is_named_at_open():
    pytest.importorskip("redis")
    config = DocumentStoreConfig(backend="redis", url="redis://127.0.0.1:6379/1", password_env="LONGCTX_TEST_PW")
    with pytest.raises(ValueError, match="LONGCTX_TEST_PW, which is not set"):
        open_store(config, env={})
