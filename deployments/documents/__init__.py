"""Document store for long-document QA (issue 4): upload once, ask many.

``open_store(DocumentStoreConfig)`` returns a ``DocumentStore``; SQLite is the
embedded default, Redis serves ingress replicas on several nodes. See
docs/documents-store.md.
"""

from deployments.documents.store import (
    ANY_OWNER,
    MAX_PAGE_SIZE,
    Document,
    DocumentMeta,
    DocumentStore,
    DocumentStoreConfig,
    DocumentStoreError,
    DocumentTooLarge,
    DuplicateDocument,
    EmptyDocument,
    InvalidCursor,
    InvalidDocument,
    LimitExceeded,
    NotUTF8,
    Page,
    StoreFull,
    StoreLimits,
    StoreUnavailable,
    open_store,
)

__all__ = [
    "ANY_OWNER",
    "MAX_PAGE_SIZE",
    "Document",
    "DocumentMeta",
    "DocumentStore",
    "DocumentStoreConfig",
    "DocumentStoreError",
    "DocumentTooLarge",
    "DuplicateDocument",
    "EmptyDocument",
    "InvalidCursor",
    "InvalidDocument",
    "LimitExceeded",
    "NotUTF8",
    "Page",
    "StoreFull",
    "StoreLimits",
    "StoreUnavailable",
    "open_store",
]
