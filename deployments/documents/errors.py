"""Errors the document store raises on purpose, one class per refusal.

Each carries ``http_status``, the answer the API is expected to give: the
store does not depend on HTTP, the attribute only saves the API a mapping
table.
"""

from __future__ import annotations


class DocumentStoreError(Exception):
    """Base of every error the store raises on purpose.

    ``http_status`` is the answer the API is expected to give; the store does
    not depend on HTTP, the attribute only saves the API a mapping table.
    """

    http_status = 500


class InvalidDocument(DocumentStoreError, ValueError):
    """The document itself is unacceptable (empty, malformed fields)."""

    http_status = 422


class EmptyDocument(InvalidDocument):
    def __init__(self) -> None:
        super().__init__("document text is empty")


class NotUTF8(InvalidDocument):
    """Input bytes are not UTF-8, or a str holds lone surrogates (which JSON
    ``\\ud800`` escapes produce) and so has no UTF-8 form."""

    http_status = 415

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"document text is not valid UTF-8 at position {position}: {reason}")
        self.position = position


class LimitExceeded(DocumentStoreError):
    """A configured limit was hit. ``limit`` names the StoreLimits field,
    ``maximum`` is its value and ``actual`` what the request would need."""

    http_status = 413

    def __init__(self, limit: str, maximum: int, actual: int, message: str) -> None:
        super().__init__(f"{message} ({limit}={maximum}, got {actual})")
        self.limit = limit
        self.maximum = maximum
        self.actual = actual


class DocumentTooLarge(LimitExceeded):
    """The document exceeds max_document_bytes, max_metadata_bytes,
    max_document_tokens or max_token_id_bytes."""


class StoreFull(LimitExceeded):
    """Storing the document would exceed max_documents,
    max_documents_per_owner or max_total_bytes."""


class DuplicateDocument(DocumentStoreError):
    """A different document already has this id (ids are random, so this is a
    caller bug, e.g. re-putting an edited copy)."""

    http_status = 409


class InvalidCursor(DocumentStoreError, ValueError):
    http_status = 400


class StoreUnavailable(DocumentStoreError):
    """The backend cannot be reached or is locked past its timeout. For Redis
    this may follow a put whose script did run; see ``put``."""

    http_status = 503


class StoreOutOfMemory(StoreUnavailable):
    """The backend refused a write for lack of memory (Redis at ``maxmemory``
    with ``noeviction``). Nothing was written; the store is full in the
    backend's terms rather than in the configured limits, so the answer is
    the store's 503 and the message names the setting that prevents it."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"document store is out of memory ({detail}); set documents.store.limits.max_total_bytes "
            "below the backend's memory limit so uploads are refused with 413 first"
        )
