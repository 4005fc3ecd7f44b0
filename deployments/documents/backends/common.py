"""Checks and encodings every backend runs, so both refuse and store exactly alike."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping, NamedTuple

from cluster.config.documents import StoreLimits
from deployments.documents.errors import DocumentTooLarge, InvalidDocument, NotUTF8, StoreFull
from deployments.documents.records import (
    DOCUMENT_ID, MAX_PAGE_SIZE, Document, DocumentMeta, WarmState, encode_text,
)

MAX_LAYOUT_CHARS = 512


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
    warm_json: str | None


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
    return Prepared(doc, metadata_json, dumps(doc.tokens), dumps(doc.pools), warm_json(doc.warm))


def warm_json(warm: WarmState | None) -> str | None:
    return None if warm is None else dumps(warm.model_dump(mode="json"))


def check_warm(warm: WarmState) -> str:
    """A warm state as stored; a non-WarmState is a caller bug (TypeError)."""
    if not isinstance(warm, WarmState):
        raise TypeError(f"expected a WarmState, got {type(warm).__name__}")
    return dumps(WarmState.model_validate(warm.model_dump()).model_dump(mode="json"))


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
