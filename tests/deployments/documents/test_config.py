"""Config schema and factory."""

import pytest
from pydantic import ValidationError

from deployments.documents import DocumentStore, DocumentStoreConfig, StoreLimits, StoreUnavailable, open_store
from deployments.documents.sqlite import SQLiteDocumentStore


def test_defaults_open_sqlite(tmp_path):
    config = DocumentStoreConfig(data_dir=str(tmp_path / "d"))
    with open_store(config) as store:
        assert isinstance(store, SQLiteDocumentStore) and isinstance(store, DocumentStore)
        assert store.path.parent == tmp_path / "d" and store.limits == StoreLimits()


def test_redis_needs_a_redis_url():
    with pytest.raises(ValidationError, match="url is required"):
        DocumentStoreConfig(backend="redis")
    with pytest.raises(ValidationError, match="must start with"):
        DocumentStoreConfig(backend="redis", url="http://x")
    DocumentStoreConfig(backend="redis", url="redis://127.0.0.1:6379/0")


@pytest.mark.parametrize(
    "bad",
    [
        {"backend": "postgres"},
        {"extra": 1},
        {"limits": {"max_documents": 0}},
        {"limits": {"max_document_bytes": 2**30}},  # over Redis's 512 MiB string cap
        {"limits": {"max_documents": 5, "max_documents_per_owner": 6}},
        {"limits": {"max_document_bytes": 100, "max_total_bytes": 99}},
        {"limits": {"unknown": 1}},
    ],
)
def test_invalid_config(bad):
    with pytest.raises(ValidationError):
        DocumentStoreConfig.model_validate(bad)


def test_fields_are_documented():
    for model in (DocumentStoreConfig, StoreLimits):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_unreachable_redis_is_unavailable():
    pytest.importorskip("redis")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the socket closes
    store = open_store(DocumentStoreConfig(backend="redis", url=f"redis://127.0.0.1:{port}/0", timeout_s=1))
    try:
        with pytest.raises(StoreUnavailable) as e:
            store.count()
        assert e.value.http_status == 503
    finally:
        store.close()
