"""Documents and token ids for the document-store tests, and a fault injected mid-put."""

from __future__ import annotations

from array import array

from deployments.documents.errors import DocumentStoreError
from deployments.documents.records import Document


def doc(text: str = "The quick brown fox.", owner: str | None = "alice", **kw) -> Document:
    return Document.new(text, owner=owner, **kw)


def inject_put_fault(backend, store, monkeypatch) -> type[Exception]:
    """Make the next put fail after its checks pass, in the middle of its
    writes. Injected because neither backend can be made to fail there by any
    input: the checks run first precisely so that inputs cannot."""
    if backend.name == "sqlite":
        def fail(conn, prepared):
            raise OSError("injected: disk gone after the metadata row was written")

        monkeypatch.setattr(store, "_insert_text", fail)
        return OSError
    # The Lua script writes nothing until its reads succeed; corrupting the
    # counter makes the script fail exactly at that boundary.
    store._redis.set(f"{store._p}count", "not a number")
    return DocumentStoreError


LAYOUT = "internlm2_5-7b-chat-1m@3f9a1c2b"


def ids_blob(*ids: int) -> bytes:
    return array("I", ids).tobytes()
