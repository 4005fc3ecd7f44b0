"""The affinity key of a request: what must land on the replica that holds its prefix."""

from __future__ import annotations

import hashlib
from array import array


def affinity_key(prompt_ids: list[int], prefix_tokens: int, document_key: str | None) -> str | None:
    """``doc:<key>`` for a document question, ``prefix:<hash>`` for a prompt of at
    least ``prefix_tokens`` tokens (its first ``prefix_tokens``), else None.

    Requests sharing the key share a KV prefix in vLLM's cache, so sending
    them to one replica turns their prefill into a cache hit.
    """
    if document_key:
        return f"doc:{document_key}"
    if len(prompt_ids) < prefix_tokens:
        return None
    digest = hashlib.blake2b(array("I", prompt_ids[:prefix_tokens]).tobytes(), digest_size=12).hexdigest()
    return f"prefix:{digest}"
