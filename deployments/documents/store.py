"""The document store's interface: what the API uses, whatever the backend.

Methods are synchronous. Both backends block on I/O (SQLite file, Redis
socket) through drivers that are synchronous and thread-safe here, so the
ingress calls them with ``asyncio.to_thread``; an async interface would need
a second driver per backend for no gain at upload rates. Backends live in
``deployments.documents.backends``; ``open_store`` there picks one.
"""

from __future__ import annotations

from typing import Mapping, Protocol, runtime_checkable

from cluster.config.documents import StoreLimits
from deployments.documents.records import ANY_OWNER, AnyOwner, Document, DocumentMeta, Page, WarmState


@runtime_checkable
class DocumentStore(Protocol):
    """What the documents API uses. All methods are thread-safe."""

    @property
    def limits(self) -> StoreLimits: ...

    def put(self, doc: Document, token_ids: Mapping[str, bytes] | None = None) -> None:
        """Store a new document and, if given, its token ids per layout
        ({layout: array("I", ids).tobytes()}), atomically: on any error
        nothing of it is stored. Raises InvalidDocument, DocumentTooLarge,
        StoreFull, DuplicateDocument, StoreUnavailable (and ValueError /
        TypeError for a malformed layout or ids object, which are caller
        bugs). Re-putting the identical document stores nothing new except
        ``token_ids``, which overwrite the same layouts (so a retried put is
        safe)."""
        ...

    def get(self, id: str, owner: str | None) -> Document | None:
        """The document with its text, or None if absent or not ``owner``'s."""
        ...

    def get_meta(self, id: str, owner: str | None) -> DocumentMeta | None:
        """Like ``get`` without loading the text."""
        ...

    def list(self, owner: str | None, limit: int = 100, after: str | None = None) -> Page:
        """``owner``'s documents in ascending (created, id) order, at most
        ``limit`` (1..MAX_PAGE_SIZE), strictly after cursor ``after``.
        ``next_cursor`` is None on the last page. Ascending order means
        uploads made while paging land after the cursor and are not skipped."""
        ...

    def update_counts(self, id: str, owner: str | None, *, tokens: Mapping[str, int] | None = None,
                      pools: Mapping[str, str] | None = None) -> DocumentMeta | None:
        """Merge per-model token counts / pools into a stored document (a
        question for a model the upload did not count); None if not found."""
        ...

    def set_warm(self, id: str, owner: str | None, warm: WarmState) -> bool:
        """Record (replacing any) the warm state of ``owner``'s document,
        atomically. False, storing nothing, if the document is absent or not
        ``owner``'s. Deleting the document deletes it too."""
        ...

    def put_token_ids(self, id: str, owner: str | None, layout: str, ids: bytes) -> bool:
        """Store (or overwrite) the encoded token ids of ``owner``'s document
        for ``layout``, atomically. False, storing nothing, if the document is
        absent or not ``owner``'s. Raises DocumentTooLarge over
        max_token_id_bytes. The bytes are opaque to the store."""
        ...

    def get_token_ids(self, id: str, owner: str | None, layout: str) -> bytes | None:
        """The bytes stored for ``layout``, or None if there are none or the
        document is absent or not ``owner``'s."""
        ...

    def delete(self, id: str, owner: str | None) -> bool:
        """True if ``owner``'s document existed and is now gone, together
        with its token ids."""
        ...

    def count(self, owner: str | None | AnyOwner = ANY_OWNER) -> int:
        """Documents of ``owner``, or of everyone with ANY_OWNER."""
        ...

    def close(self) -> None: ...
