"""The DocumentStore contract, run against every backend (see conftest): token ids."""

from __future__ import annotations

from array import array

import pytest

from cluster.config.documents import StoreLimits
from deployments.documents.errors import DocumentTooLarge
from tests.support.documents import LAYOUT, doc, ids_blob, inject_put_fault


def test_token_ids_round_trip(store):
    d = doc()
    store.put(d)
    assert store.get_token_ids(d.id, "alice", LAYOUT) is None
    blob = ids_blob(1, 0, 2**32 - 1, 10, 13)  # NUL bytes and 0xff..: binary-safe
    assert store.put_token_ids(d.id, "alice", LAYOUT, blob) is True
    assert store.put_token_ids(d.id, "alice", "other@00000000", bytearray(b"")) is True
    got = store.get_token_ids(d.id, "alice", LAYOUT)
    assert type(got) is bytes and got == blob
    assert array("I", got).tolist() == [1, 0, 2**32 - 1, 10, 13]
    assert store.get_token_ids(d.id, "alice", "other@00000000") == b""
    assert store.get_token_ids(d.id, "alice", "unknown@0") is None
    # Ids are not part of the document's records or its accounting.
    assert store.get(d.id, "alice") == d and store.get_meta(d.id, "alice") == d.meta()
    assert store.list("alice").items == [d.meta()]


def test_token_ids_overwrite(store):
    d = doc()
    store.put(d, token_ids={LAYOUT: ids_blob(1, 2, 3)})
    assert store.put_token_ids(d.id, "alice", LAYOUT, ids_blob(4, 5))
    assert store.get_token_ids(d.id, "alice", LAYOUT) == ids_blob(4, 5)
    # A retried put stores its ids again, over what is there.
    store.put(d, token_ids={LAYOUT: ids_blob(6)})
    assert store.get_token_ids(d.id, "alice", LAYOUT) == ids_blob(6)
    assert store.count() == 1


def test_token_ids_owner_isolation(store):
    mine, anon = doc(owner="alice"), doc(owner=None)
    store.put(mine, token_ids={LAYOUT: ids_blob(1)})
    store.put(anon, token_ids={LAYOUT: ids_blob(2)})
    for other in ("bob", None, "ALICE"):
        assert store.get_token_ids(mine.id, other, LAYOUT) is None
        assert store.put_token_ids(mine.id, other, LAYOUT, ids_blob(9)) is False
    assert store.get_token_ids(anon.id, "alice", LAYOUT) is None
    assert store.put_token_ids(anon.id, "alice", LAYOUT, ids_blob(9)) is False
    assert store.get_token_ids(mine.id, "alice", LAYOUT) == ids_blob(1)
    assert store.get_token_ids(anon.id, None, LAYOUT) == ids_blob(2)
    unknown = doc().id
    assert store.put_token_ids(unknown, "alice", LAYOUT, ids_blob(1)) is False
    assert store.put_token_ids("../x", "alice", LAYOUT, ids_blob(1)) is False
    assert store.get_token_ids(unknown, "alice", LAYOUT) is None
    assert store.get_token_ids("../x", "alice", LAYOUT) is None


def test_delete_removes_token_ids(store):
    d = doc()
    store.put(d, token_ids={LAYOUT: ids_blob(1), "b@1": ids_blob(2)})
    assert store.delete(d.id, "alice")
    assert store.get_token_ids(d.id, "alice", LAYOUT) is None
    assert store.put_token_ids(d.id, "alice", LAYOUT, ids_blob(3)) is False
    # Re-putting the same document (same id) proves the ids are gone, not
    # just hidden behind the missing document.
    store.put(d)
    assert store.get_token_ids(d.id, "alice", LAYOUT) is None
    assert store.get_token_ids(d.id, "alice", "b@1") is None


@pytest.mark.parametrize("bad", ["", "x" * 513, "a\ud800", 3, None])
def test_invalid_layout_is_a_caller_bug(store, bad):
    d = doc()
    store.put(d)
    with pytest.raises(ValueError):
        store.put_token_ids(d.id, "alice", bad, ids_blob(1))
    with pytest.raises(ValueError):
        store.get_token_ids(d.id, "alice", bad)
    other = doc("other")
    with pytest.raises(ValueError):
        store.put(other, token_ids={LAYOUT: ids_blob(1), bad: ids_blob(1)})
    with pytest.raises(TypeError):
        store.put(other, token_ids={LAYOUT: [1, 2]})
    with pytest.raises(TypeError):
        store.put_token_ids(d.id, "alice", LAYOUT, "1 2")
    assert store.count() == 1 and store.get(other.id, "alice") is None


def test_million_token_ids_round_trip(store):
    blob = array("I", range(1_048_576)).tobytes()
    assert len(blob) == 4 * 1024 * 1024
    d = doc()
    store.put(d, token_ids={LAYOUT: blob})
    assert store.get_token_ids(d.id, "alice", LAYOUT) == blob
    assert store.put_token_ids(d.id, "alice", "second@1", blob)
    assert store.get_token_ids(d.id, "alice", "second@1") == blob


def test_token_ids_over_limit(backend):
    store = backend.open(StoreLimits(max_document_tokens=2, max_token_id_bytes=8))
    d = doc()
    store.put(d, token_ids={LAYOUT: ids_blob(1, 2)})  # 8 bytes: at the limit
    with pytest.raises(DocumentTooLarge) as e:
        store.put_token_ids(d.id, "alice", LAYOUT, ids_blob(1, 2, 3))
    assert (e.value.limit, e.value.maximum, e.value.actual) == ("max_token_id_bytes", 8, 12)
    assert e.value.http_status == 413
    assert store.get_token_ids(d.id, "alice", LAYOUT) == ids_blob(1, 2)
    big = doc("big")
    with pytest.raises(DocumentTooLarge) as e:
        store.put(big, token_ids={"ok@1": ids_blob(1), LAYOUT: ids_blob(1, 2, 3)})
    assert e.value.limit == "max_token_id_bytes" and e.value.actual == 12
    assert store.get(big.id, "alice") is None and store.count() == 1


def test_failed_put_with_token_ids_leaves_nothing(backend, monkeypatch):
    store = backend.open()
    d = doc()
    if backend.name == "sqlite":
        # Fails after the metadata and text rows are written: the last step.
        def fail(conn, id, token_ids):
            raise OSError("injected: disk gone while writing token ids")

        monkeypatch.setattr(store, "_insert_token_ids", fail)
        error: type[Exception] = OSError
    else:
        error = inject_put_fault(backend, store, monkeypatch)
    with pytest.raises(error):
        store.put(d, token_ids={LAYOUT: ids_blob(1, 2, 3)})
    monkeypatch.undo()
    if backend.name == "redis":
        store._redis.delete(f"{store._p}count")
        assert not store._redis.exists(store._ids_key(d.id))
    assert store.get(d.id, "alice") is None and store.get_meta(d.id, "alice") is None
    assert store.count() == 0 and store.list("alice").items == []
    store.put(d)  # the id is free, and carries no leftover ids
    assert store.get_token_ids(d.id, "alice", LAYOUT) is None


def test_token_ids_persist_across_reopen(backend):
    first = backend.open()
    d = doc()
    first.put(d, token_ids={LAYOUT: ids_blob(7, 8)})
    first.close()
    assert backend.open().get_token_ids(d.id, "alice", LAYOUT) == ids_blob(7, 8)
