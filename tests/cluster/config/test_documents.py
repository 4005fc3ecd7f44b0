"""The document store's settings in the config schema."""

import pytest
from pydantic import ValidationError

from cluster.config.documents import DocumentStoreConfig, StoreLimits


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


def test_token_id_limit_must_hold_a_full_document():
    StoreLimits(max_document_tokens=1_048_576, max_token_id_bytes=4 * 1_048_576)
    with pytest.raises(ValidationError, match="max_token_id_bytes"):
        StoreLimits(max_document_tokens=1_048_576, max_token_id_bytes=4 * 1_048_576 - 1)
    assert StoreLimits().max_token_id_bytes >= 4 * StoreLimits().max_document_tokens
