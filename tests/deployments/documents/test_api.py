"""The documents API's own rules, apart from the store."""

import pytest

from cluster.config.documents import StoreLimits
from deployments.documents.api import check_document_tokens
from deployments.documents.errors import DocumentTooLarge


def test_token_limit_is_checked_after_counting():
    limits = StoreLimits(max_document_tokens=100)
    check_document_tokens(limits, 100)
    with pytest.raises(DocumentTooLarge) as e:
        check_document_tokens(limits, 101)
    assert (e.value.limit, e.value.maximum, e.value.actual) == ("max_document_tokens", 100, 101)
