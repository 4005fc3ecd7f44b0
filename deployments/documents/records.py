"""What the document store holds: documents, their metadata, listing pages and cursors.

Ownership is part of every read: a document is visible only to the owner that
uploaded it, and ``owner=None`` is an owner of its own (the anonymous owner of
a cluster without API keys), not a wildcard. The only wildcard is
``ANY_OWNER`` in ``count``.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
import time
from typing import Any, Literal, Mapping, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, JsonValue, NonNegativeInt

from deployments.documents.errors import EmptyDocument, InvalidCursor, InvalidDocument, NotUTF8

DOCUMENT_ID = re.compile(r"^doc-[0-9a-f]{24}$")
MAX_PAGE_SIZE = 1000
_MAX_CREATED = 10**12  # keeps the fixed-width cursor/index encoding ordered
_CURSOR = re.compile(r"^(\d{1,12})\.(doc-[0-9a-f]{24})$")
_UTF8_BOM = b"\xef\xbb\xbf"


WarmStatus = Literal["pending", "warming", "ready", "failed"]


class WarmState(BaseModel):
    """Where a document's prefix was (or is being) prefilled ahead of its first question."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: WarmStatus = Field(
        description="pending: accepted, not yet on an engine; warming: an engine replica is prefilling "
        "it; ready: prefilled there (its KV is in that replica's prefix cache until evicted); "
        "failed: see error."
    )
    model: str = Field(min_length=1, max_length=512, description="The model whose prefix is warmed.")
    pool: str = Field(min_length=1, max_length=512, description="The pool chosen for the document's questions.")
    replica: str | None = Field(
        default=None, max_length=512, description="The engine replica holding the prefix; None until one takes it."
    )
    error: str | None = Field(default=None, max_length=2000, description="Why warming failed (status failed).")
    updated: int = Field(ge=0, lt=_MAX_CREATED, description="Unix seconds of the last change.")


class DocumentMeta(BaseModel):
    """Everything about a document except its text: what listings return."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=DOCUMENT_ID.pattern, description="Server-generated id, `doc-` + 24 hex.")
    owner: str | None = Field(
        min_length=1,
        max_length=512,
        description="Principal that uploaded it: the name its API key belongs to (any of that "
        "principal's keys reads it, so it survives a key rotation), `key-` + hash for a bare key, "
        "never the key itself; None without authentication.",
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
    warm: WarmState | None = Field(
        default=None, description="The last warm-up of the document's prefix; None if never warmed."
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


class AnyOwner(enum.Enum):
    ANY = "any"


ANY_OWNER = AnyOwner.ANY
"""``count(ANY_OWNER)`` counts every document; ``None`` is the anonymous owner."""


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
