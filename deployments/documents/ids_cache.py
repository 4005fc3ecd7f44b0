"""The ingress's cache of documents' prefix ids: a warm question reads no document.

Every question about a document needs the document's prefix ids (counted
once, at upload, and kept in the store). Reading them back per question is a
pass over the whole document: the store's blob (4 bytes a token, 4 MB at 1M
tokens, from SQLite or across the network from Redis) decoded into a list,
0.3 s at 1M tokens (benchmarks/cpu/warm_path.py). This keeps the decoded
ids of the documents asked most recently, least recently used out first,
up to ``max_tokens`` tokens in all, per ingress replica.

A document's ids never change (a new text is a new document), so an entry is
never stale; the API still reads the document's record per question, which
checks that it exists and belongs to the caller before its ids are used.
"""

from __future__ import annotations

from collections import OrderedDict


class PrefixIdsCache:
    """LRU of (document id, layout) -> prefix ids, bounded by tokens."""

    def __init__(self, max_tokens: int):
        self._max_tokens = max_tokens
        self._entries: OrderedDict[tuple[str, str], list[int]] = OrderedDict()
        self._tokens = 0

    def get(self, doc_id: str, layout: str) -> list[int] | None:
        ids = self._entries.get((doc_id, layout))
        if ids is not None:
            self._entries.move_to_end((doc_id, layout))
        return ids

    def put(self, doc_id: str, layout: str, ids: list[int]) -> None:
        """Keep ``ids`` (not copied: callers never change them); larger than the bound: not kept."""
        self.discard(doc_id, layout)
        if len(ids) > self._max_tokens:
            return
        self._entries[(doc_id, layout)] = ids
        self._tokens += len(ids)
        while self._tokens > self._max_tokens:
            _, oldest = self._entries.popitem(last=False)
            self._tokens -= len(oldest)

    def discard(self, doc_id: str, layout: str | None = None) -> None:
        """Forget a document's ids (one layout, or all of them)."""
        for key in [k for k in self._entries if k[0] == doc_id and (layout is None or k[1] == layout)]:
            self._tokens -= len(self._entries.pop(key))

    @property
    def tokens(self) -> int:
        return self._tokens
