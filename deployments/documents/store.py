"""Document store: the interface, record types, limits and errors.

Methods are synchronous. Both backends block on I/O (SQLite file, Redis
socket) through drivers that are synchronous and thread-safe here, so the
ingress calls them with ``asyncio.to_thread``; an async interface would need
a second driver per backend for no gain at upload rates.

Ownership is part of every read: a document is visible only to the owner that
uploaded it, and ``owner=None`` is an owner of its own (the anonymous owner of
a cluster without API keys), not a wildcard. The only wildcard is
``ANY_OWNER`` in ``count``.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import secrets
import time
from typing import Any, Literal, Mapping, NamedTuple, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, JsonValue, NonNegativeInt, model_validator

DOCUMENT_ID = re.compile(r"^doc-[0-9a-f]{24}$")
MAX_PAGE_SIZE = 1000
# Redis refuses strings over 512 MiB (proto-max-bulk-len), so a larger
# per-document limit could never be honoured by every backend.
_HARD_MAX_DOCUMENT_BYTES = 512 * 1024 * 1024
# Token ids are stored as the caller's array("I", ids).tobytes().
TOKEN_ID_BYTES = 4
MAX_LAYOUT_CHARS = 512
_MAX_CREATED = 10**12  # keeps the fixed-width cursor/index encoding ordered
_CURSOR = re.compile(r"^(\d{1,12})\.(doc-[0-9a-f]{24})$")
_UTF8_BOM = b"\xef\xbb\xbf"


# --------------------------------------------------------------------- errors


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


# -------------------------------------------------------------------- records


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DocumentMeta(_Strict):
    """Everything about a document except its text: what listings return."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=DOCUMENT_ID.pattern, description="Server-generated id, `doc-` + 24 hex.")
    owner: str | None = Field(
        min_length=1,
        max_length=512,
        description="Principal of the API key that uploaded it (not the secret key "
        "itself: it is stored verbatim), or None without authentication.",
    )
    metadata: dict[str, JsonValue] = Field(default_factory=dict, description="Client JSON object.")
    created: int = Field(ge=0, lt=_MAX_CREATED, description="Upload time, unix seconds.")
    bytes: int = Field(ge=1, description="Size of the text in UTF-8.")
    tokens: dict[str, NonNegativeInt] = Field(
        default_factory=dict, description="Token count of the text per model name."
    )
    pools: dict[str, str] = Field(
        default_factory=dict, description="Pool chosen for the document per model name."
    )
    affinity_key: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="sha256 hex of the text: identical texts share it, so the "
        "router can send them to the replica that holds their KV prefix.",
    )

    @property
    def cursor(self) -> str:
        """Position of this document in its owner's listing."""
        return encode_cursor(self.created, self.id)


class Document(DocumentMeta):
    """A stored document. Build new ones with ``Document.new``."""

    text: str = Field(description="The document, as uploaded (UTF-8, non-empty).")

    @classmethod
    def new(
        cls,
        text: str | bytes,
        *,
        owner: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tokens: Mapping[str, int] | None = None,
        pools: Mapping[str, str] | None = None,
        created: int | None = None,
    ) -> Document:
        """A new document with a fresh id. ``bytes`` input (a file upload) is
        decoded strictly; raises EmptyDocument or NotUTF8."""
        if isinstance(text, (bytes, bytearray, memoryview)):
            raw = bytes(text)
            # Editors on Windows prepend a BOM; keeping it would give the same
            # text a different affinity key and a stray token in the prompt.
            if raw.startswith(_UTF8_BOM):
                raw = raw[len(_UTF8_BOM) :]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise NotUTF8(e.start, e.reason) from None
        encoded = encode_text(text)
        return cls(
            id=new_document_id(),
            text=text,
            owner=owner,
            metadata=dict(metadata or {}),
            created=int(time.time()) if created is None else created,
            bytes=len(encoded),
            tokens=dict(tokens or {}),
            pools=dict(pools or {}),
            affinity_key=hashlib.sha256(encoded).hexdigest(),
        )

    def meta(self) -> DocumentMeta:
        return DocumentMeta.model_validate(self.model_dump(exclude={"text"}))


class Page(NamedTuple):
    """One page of a listing; unpacks as ``items, next_cursor``."""

    items: list[DocumentMeta]
    next_cursor: str | None


class _AnyOwner(enum.Enum):
    ANY = "any"


ANY_OWNER = _AnyOwner.ANY
"""``count(ANY_OWNER)`` counts every document; ``None`` is the anonymous owner."""


# --------------------------------------------------------------------- config


class StoreLimits(_Strict):
    """Limits the store enforces on put (token limits are the API's: it knows
    the pools)."""

    max_document_bytes: int = Field(
        default=16 * 1024 * 1024,
        gt=0,
        le=_HARD_MAX_DOCUMENT_BYTES,
        description="Largest document text in UTF-8 bytes (1M tokens of prose is "
        "about 4 MiB). Uploads over it get 413.",
    )
    max_metadata_bytes: int = Field(
        default=16 * 1024,
        gt=0,
        description="Largest metadata object, as compact JSON. Listings return "
        "metadata, so it must stay small.",
    )
    max_document_tokens: int = Field(
        default=1_048_576,
        gt=0,
        description="Most tokens a document may have for any model; checked by the "
        "API after tokenizing (see `check_tokens`).",
    )
    max_token_id_bytes: int = Field(
        default=8 * 1024 * 1024,
        gt=0,
        le=_HARD_MAX_DOCUMENT_BYTES,
        description="Largest stored token-id entry (one document, one layout) in "
        "bytes, at 4 bytes per token: 8 MiB holds a max_document_tokens document "
        "plus its prompt layout with room to spare. Must be at least "
        "4 x max_document_tokens.",
    )
    max_documents: int = Field(
        default=10_000,
        gt=0,
        description="Most documents in the whole store, across owners: the bound "
        "that protects the backend's disk or memory.",
    )
    max_documents_per_owner: int | None = Field(
        default=None,
        gt=0,
        description="Most documents one owner (API key) may keep, so one key "
        "cannot fill the store for everyone; None for no per-owner bound.",
    )
    max_total_bytes: int | None = Field(
        default=None,
        gt=0,
        description="Most text bytes in the whole store (size Redis memory with "
        "it); None for no bound besides max_documents x max_document_bytes.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> StoreLimits:
        if self.max_documents_per_owner is not None and self.max_documents_per_owner > self.max_documents:
            raise ValueError("max_documents_per_owner must be <= max_documents")
        if self.max_total_bytes is not None and self.max_total_bytes < self.max_document_bytes:
            raise ValueError("max_total_bytes must be >= max_document_bytes")
        # Otherwise every document near max_document_tokens would pass the
        # token check and then fail when its ids are stored.
        if self.max_token_id_bytes < TOKEN_ID_BYTES * self.max_document_tokens:
            raise ValueError(
                f"max_token_id_bytes must be >= {TOKEN_ID_BYTES} x max_document_tokens "
                f"({TOKEN_ID_BYTES * self.max_document_tokens})"
            )
        return self

    def check_tokens(self, tokens: int) -> None:
        """For the API: raise DocumentTooLarge if a token count is over the limit."""
        if tokens > self.max_document_tokens:
            raise DocumentTooLarge(
                "max_document_tokens", self.max_document_tokens, tokens, "document has too many tokens"
            )


class DocumentStoreConfig(_Strict):
    """Where documents live. SQLite for one node, Redis when ingress replicas
    run on several nodes."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    backend: Literal["sqlite", "redis"] = Field(
        default="sqlite", description="`sqlite` (embedded, one node) or `redis` (shared)."
    )
    data_dir: str = Field(
        default="./data/documents",
        description="SQLite only: directory of the database file, created if absent. "
        "Relative paths resolve against the process's working directory; use an "
        "absolute path on a local (not network) disk in production.",
    )
    url: str | None = Field(
        default=None,
        description="Redis only: `redis://[:password@]host:port/db`, `rediss://...` "
        "or `unix:///path`. Use a ${ENV} reference for the password.",
    )
    key_prefix: str = Field(
        default="longctx:docs:",
        min_length=1,
        description="Redis only: prefix of every key, so clusters can share a server.",
    )
    timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Redis socket timeout, and how long SQLite waits for a lock.",
    )
    limits: StoreLimits = Field(default_factory=StoreLimits, description="Size and count limits.")

    @model_validator(mode="after")
    def _backend_needs(self) -> DocumentStoreConfig:
        if self.backend == "redis":
            if not self.url:
                raise ValueError("documents.url is required when backend is redis")
            if not self.url.startswith(("redis://", "rediss://", "unix://")):
                raise ValueError("documents.url must start with redis://, rediss:// or unix://")
        return self


# ------------------------------------------------------------------ interface


@runtime_checkable
class DocumentStore(Protocol):
    """What the API and the affinity router use. All methods are thread-safe."""

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

    def update_counts(
        self,
        id: str,
        owner: str | None,
        *,
        tokens: Mapping[str, int] | None = None,
        pools: Mapping[str, str] | None = None,
    ) -> DocumentMeta | None:
        """Merge per-model token counts / pools into a stored document (a
        question for a model the upload did not count); None if not found."""
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

    def count(self, owner: str | None | _AnyOwner = ANY_OWNER) -> int:
        """Documents of ``owner``, or of everyone with ANY_OWNER."""
        ...

    def close(self) -> None: ...


def open_store(config: DocumentStoreConfig) -> DocumentStore:
    """The configured backend, ready to use. Imports lazily so an SQLite
    deployment needs no Redis client."""
    if config.backend == "sqlite":
        from deployments.documents.sqlite import SQLiteDocumentStore

        return SQLiteDocumentStore(config.data_dir, config.limits, timeout_s=config.timeout_s)
    from deployments.documents.redis_store import RedisDocumentStore

    assert config.url is not None  # guaranteed by DocumentStoreConfig
    return RedisDocumentStore(
        config.url, config.limits, key_prefix=config.key_prefix, timeout_s=config.timeout_s
    )


# -------------------------------------------------- helpers for the backends


def new_document_id() -> str:
    return "doc-" + secrets.token_hex(12)


def encode_text(text: str) -> bytes:
    """UTF-8 of a non-empty text, or EmptyDocument / NotUTF8."""
    if not isinstance(text, str):
        raise InvalidDocument(f"document text must be str, not {type(text).__name__}")
    if not text:
        raise EmptyDocument()
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise NotUTF8(e.start, e.reason) from None


def encode_cursor(created: int, id: str) -> str:
    return f"{created}.{id}"


def decode_cursor(cursor: str) -> tuple[int, str]:
    m = _CURSOR.match(cursor) if isinstance(cursor, str) else None
    if m is None:
        raise InvalidCursor(f"invalid cursor {cursor!r}")
    return int(m.group(1)), m.group(2)


def check_page_size(limit: int) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be an integer in 1..{MAX_PAGE_SIZE}, got {limit!r}")


def dumps(value: Any) -> str:
    """Compact, deterministic JSON, as stored by both backends."""
    # allow_nan=False: NaN/Infinity are not JSON, and the API would have to
    # send them back in listings.
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False)


class Prepared(NamedTuple):
    """A document checked against the per-document limits, with its
    serialized parts, ready for a backend to write."""

    doc: Document
    metadata_json: str
    tokens_json: str
    pools_json: str


def prepare(doc: Document, limits: StoreLimits) -> Prepared:
    """Checks every backend runs before writing anything. ``bytes`` and
    ``affinity_key`` are recomputed because an API that edits a Document with
    ``model_copy`` bypasses validation."""
    if not isinstance(doc, Document):
        raise InvalidDocument(f"expected a Document, got {type(doc).__name__}")
    if not DOCUMENT_ID.match(doc.id):
        raise InvalidDocument(f"invalid document id {doc.id!r}")
    encoded = encode_text(doc.text)
    if len(encoded) > limits.max_document_bytes:
        raise DocumentTooLarge(
            "max_document_bytes", limits.max_document_bytes, len(encoded), "document is too large"
        )
    if doc.bytes != len(encoded):
        raise InvalidDocument(f"bytes={doc.bytes} but the text has {len(encoded)} UTF-8 bytes")
    if doc.affinity_key != hashlib.sha256(encoded).hexdigest():
        raise InvalidDocument("affinity_key is not the sha256 of the text")
    try:
        metadata_json = dumps(doc.metadata)
    except (TypeError, ValueError) as e:
        raise InvalidDocument(f"metadata is not JSON: {e}") from None
    try:
        metadata_size = len(metadata_json.encode("utf-8"))
    except UnicodeEncodeError as e:
        raise NotUTF8(e.start, f"in metadata: {e.reason}") from None
    if metadata_size > limits.max_metadata_bytes:
        raise DocumentTooLarge(
            "max_metadata_bytes", limits.max_metadata_bytes, metadata_size, "metadata is too large"
        )
    return Prepared(doc, metadata_json, dumps(doc.tokens), dumps(doc.pools))


def check_layout(layout: str) -> None:
    """Layouts come from server code, never from a client, so a bad one is a
    bug: ValueError rather than an InvalidDocument the API would send back."""
    if not isinstance(layout, str) or not 1 <= len(layout) <= MAX_LAYOUT_CHARS:
        raise ValueError(f"layout must be a str of 1..{MAX_LAYOUT_CHARS} characters, got {layout!r:.80}")
    try:
        layout.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"layout {layout!r:.80} is not valid UTF-8") from None


def check_token_ids(layout: str, ids: bytes, limits: StoreLimits) -> bytes:
    """One (layout, ids) entry checked against the limits, as bytes (which
    both drivers store as a binary value, whatever buffer was passed)."""
    check_layout(layout)
    if not isinstance(ids, (bytes, bytearray, memoryview)):
        raise TypeError(f"token ids must be bytes (array('I', ids).tobytes()), got {type(ids).__name__}")
    data = bytes(ids)
    if len(data) > limits.max_token_id_bytes:
        raise DocumentTooLarge(
            "max_token_id_bytes", limits.max_token_id_bytes, len(data), f"token ids for {layout!r} are too large"
        )
    return data


def prepare_token_ids(token_ids: Mapping[str, bytes] | None, limits: StoreLimits) -> dict[str, bytes]:
    """Every entry of ``put(..., token_ids=...)`` checked before anything is
    written, so one oversized layout leaves the whole put undone."""
    if token_ids is None:
        return {}
    if not isinstance(token_ids, Mapping):
        raise TypeError(f"token_ids must be a mapping of layout to bytes, got {type(token_ids).__name__}")
    return {layout: check_token_ids(layout, ids, limits) for layout, ids in token_ids.items()}


def check_store_capacity(
    limits: StoreLimits, *, total: int, owner_total: int, total_bytes: int, new_bytes: int
) -> None:
    """Raise StoreFull if one more document of ``new_bytes`` does not fit.
    Backends call it inside their write transaction so concurrent puts cannot
    both pass."""
    if total + 1 > limits.max_documents:
        raise StoreFull("max_documents", limits.max_documents, total + 1, "document store is full")
    if limits.max_documents_per_owner is not None and owner_total + 1 > limits.max_documents_per_owner:
        raise StoreFull(
            "max_documents_per_owner",
            limits.max_documents_per_owner,
            owner_total + 1,
            "this API key has too many documents",
        )
    if limits.max_total_bytes is not None and total_bytes + new_bytes > limits.max_total_bytes:
        raise StoreFull(
            "max_total_bytes",
            limits.max_total_bytes,
            total_bytes + new_bytes,
            "document store is out of space",
        )


def merge_counts(
    meta: DocumentMeta, tokens: Mapping[str, int] | None, pools: Mapping[str, str] | None
) -> tuple[dict[str, int], dict[str, str]]:
    """Validated merge for ``update_counts``."""
    merged = meta.model_copy(
        update={"tokens": {**meta.tokens, **(tokens or {})}, "pools": {**meta.pools, **(pools or {})}}
    )
    checked = DocumentMeta.model_validate(merged.model_dump())
    return checked.tokens, checked.pools
