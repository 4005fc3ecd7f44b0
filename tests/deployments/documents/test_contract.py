"""The DocumentStore contract, run against every backend (see conftest)."""

from __future__ import annotations

import threading
import uuid
from array import array
from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic import ValidationError

from cluster.config.documents import StoreLimits
from deployments.documents.errors import (
    DocumentStoreError,
    DocumentTooLarge,
    DuplicateDocument,
    EmptyDocument,
    InvalidCursor,
    InvalidDocument,
    NotUTF8,
    StoreFull,
    StoreUnavailable,
)
from deployments.documents.records import ANY_OWNER, MAX_PAGE_SIZE, Document
from deployments.documents.store import DocumentStore


def doc(text: str = "The quick brown fox.", owner: str | None = "alice", **kw) -> Document:
    return Document.new(text, owner=owner, **kw)


def test_store_satisfies_protocol(store):
    assert isinstance(store, DocumentStore)
    assert store.limits == StoreLimits()


def test_round_trip(store):
    # NUL, astral and combining characters: nothing is lost on the way.
    text = "Contract §1\x00 — 契約 👩‍💻 e\u0301\n" * 100
    d = doc(text, metadata={"title": "c", "tags": ["a", 1, None, {"x": 2.5}]},
            tokens={"internlm3": 4321, "internlm2": 5000}, pools={"internlm3": "i3-32k"})
    store.put(d)
    assert store.get(d.id, "alice") == d
    meta = store.get_meta(d.id, "alice")
    assert meta == d.meta()
    assert not hasattr(meta, "text")
    assert meta.bytes == len(text.encode()) and meta.affinity_key == d.affinity_key
    assert store.count() == store.count("alice") == 1


def test_identical_text_shares_affinity_key(store):
    a, b = doc("same text"), doc("same text", owner="bob")
    store.put(a)
    store.put(b)
    assert a.id != b.id and a.affinity_key == b.affinity_key
    assert store.get_meta(b.id, "bob").affinity_key == a.affinity_key


def test_owner_isolation(store):
    mine, anon = doc(owner="alice"), doc(owner=None)
    store.put(mine)
    store.put(anon)
    for other in ("bob", None, "alice " , "ALICE"):
        assert store.get(mine.id, other) is None
        assert store.get_meta(mine.id, other) is None
        assert store.update_counts(mine.id, other, tokens={"m": 1}) is None
        assert store.delete(mine.id, other) is False
    assert store.get(anon.id, "alice") is None and store.get(anon.id, None) == anon
    assert [m.id for m in store.list("alice").items] == [mine.id]
    assert [m.id for m in store.list(None).items] == [anon.id]
    assert store.list("bob").items == []
    assert (store.count("alice"), store.count(None), store.count("bob"), store.count(ANY_OWNER)) == (1, 1, 0, 2)
    assert store.get(mine.id, "alice") == mine  # untouched by the failed deletes


@pytest.mark.parametrize("bad_id", ["", "doc-", "../etc/passwd", "doc-XYZ", "doc-" + "0" * 24 + "x", "*", 42])
def test_malformed_id_is_just_absent(store, bad_id):
    assert store.get(bad_id, "alice") is None
    assert store.get_meta(bad_id, "alice") is None
    assert store.delete(bad_id, "alice") is False


def test_paging_across_pages(store):
    # Several documents per second, as in a bulk upload, so the id breaks ties.
    docs = [doc(f"text {i}", created=1_700_000_000 + i // 4) for i in range(23)]
    noise = [doc(f"noise {i}", owner="bob", created=1_700_000_000) for i in range(5)]
    for d in docs + noise:
        store.put(d)
    expected = [d.id for d in sorted(docs, key=lambda d: (d.created, d.id))]

    seen, cursor, pages = [], None, 0
    while True:
        items, cursor = store.list("alice", limit=7, after=cursor)
        pages += 1
        seen += [m.id for m in items]
        if cursor is None:
            break
        assert len(items) == 7
    assert pages == 4 and seen == expected
    assert store.list("alice", limit=MAX_PAGE_SIZE).items == [d.meta() for d in sorted(docs, key=lambda d: (d.created, d.id))]


def test_exact_multiple_has_no_empty_last_page(store):
    for i in range(6):
        store.put(doc(f"t{i}"))
    first = store.list("alice", limit=3)
    second = store.list("alice", limit=3, after=first.next_cursor)
    assert first.next_cursor is not None and len(second.items) == 3 and second.next_cursor is None


def test_cursor_survives_deleting_its_document(store):
    docs = sorted((doc(f"t{i}") for i in range(5)), key=lambda d: (d.created, d.id))
    for d in docs:
        store.put(d)
    page = store.list("alice", limit=2)
    assert store.delete(page.items[-1].id, "alice")
    rest = store.list("alice", limit=10, after=page.next_cursor)
    assert [m.id for m in rest.items] == [d.id for d in docs[2:]]


@pytest.mark.parametrize("cursor", ["", "abc", "12.doc-zz", "1700000000.doc-123", "-1.doc-" + "a" * 24])
def test_invalid_cursor(store, cursor):
    with pytest.raises(InvalidCursor):
        store.list("alice", after=cursor)


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE_SIZE + 1, True, 2.5])
def test_invalid_page_size(store, limit):
    with pytest.raises(ValueError):
        store.list("alice", limit=limit)


def test_delete(store):
    a, b = doc("a"), doc("b")
    store.put(a)
    store.put(b)
    assert store.delete(a.id, "alice") is True
    assert store.delete(a.id, "alice") is False
    assert store.get(a.id, "alice") is None and store.get_meta(a.id, "alice") is None
    assert [m.id for m in store.list("alice").items] == [b.id]
    assert store.count() == store.count("alice") == 1


def test_put_is_idempotent_but_ids_are_not_reusable(store):
    d = doc()
    store.put(d)
    store.put(d)  # a retried put
    assert store.count() == 1
    with pytest.raises(DuplicateDocument):
        store.put(d.model_copy(update={"owner": "bob"}))
    other = Document.new("different", owner="alice")
    with pytest.raises(DuplicateDocument):
        store.put(other.model_copy(update={"id": d.id}))
    assert store.get(d.id, "alice") == d and store.count() == 1


def test_update_counts_merges(store):
    d = doc(tokens={"a": 10}, pools={"a": "a-short"})
    store.put(d)
    meta = store.update_counts(d.id, "alice", tokens={"b": 12}, pools={"b": "b-long"})
    assert meta.tokens == {"a": 10, "b": 12} and meta.pools == {"a": "a-short", "b": "b-long"}
    assert store.get_meta(d.id, "alice") == meta
    assert store.get(d.id, "alice").text == d.text
    with pytest.raises(ValidationError):
        store.update_counts(d.id, "alice", tokens={"c": -1})
    assert store.get_meta(d.id, "alice") == meta


def test_document_too_large(backend):
    store = backend.open(StoreLimits(max_document_bytes=10, max_metadata_bytes=20))
    store.put(doc("é" * 5))  # 10 bytes: at the limit
    with pytest.raises(DocumentTooLarge) as e:
        store.put(doc("é" * 5 + "x"))
    assert (e.value.limit, e.value.maximum, e.value.actual) == ("max_document_bytes", 10, 11)
    assert e.value.http_status == 413 and "max_document_bytes=10" in str(e.value)
    with pytest.raises(DocumentTooLarge) as e:
        store.put(doc("ok", metadata={"k": "v" * 20}))
    assert e.value.limit == "max_metadata_bytes" and e.value.maximum == 20
    assert store.count() == 1


def test_store_full(backend):
    store = backend.open(StoreLimits(max_documents=3))
    docs = [doc(f"t{i}", owner=f"k{i}") for i in range(3)]
    for d in docs:
        store.put(d)
    with pytest.raises(StoreFull) as e:
        store.put(doc("one more"))
    assert (e.value.limit, e.value.maximum, e.value.actual) == ("max_documents", 3, 4)
    store.delete(docs[0].id, "k0")
    store.put(doc("now it fits"))
    assert store.count() == 3


def test_per_owner_and_total_bytes_limits(backend):
    store = backend.open(StoreLimits(max_documents=10, max_documents_per_owner=2,
                                     max_document_bytes=10, max_total_bytes=25))
    store.put(doc("a" * 10))
    store.put(doc("b" * 10))
    with pytest.raises(StoreFull) as e:
        store.put(doc("c"))
    assert (e.value.limit, e.value.maximum) == ("max_documents_per_owner", 2)
    store.put(doc("d" * 5, owner="bob"))  # 25 bytes in all
    with pytest.raises(StoreFull) as e:
        store.put(doc("e", owner="carol"))
    assert (e.value.limit, e.value.maximum, e.value.actual) == ("max_total_bytes", 25, 26)
    assert store.count() == 3


def test_invalid_text_is_rejected_at_the_boundary(store):
    with pytest.raises(NotUTF8) as e:
        Document.new(b"ok \xff\xfe bad")
    assert e.value.position == 3 and e.value.http_status == 415
    with pytest.raises(EmptyDocument):
        Document.new("")
    with pytest.raises(EmptyDocument):
        Document.new(b"\xef\xbb\xbf")
    assert Document.new(b"\xef\xbb\xbfhi").text == "hi"
    # A lone surrogate (what json.loads makes of "\ud800") has no UTF-8 form;
    # Document.new refuses it and so must put, for documents built otherwise.
    with pytest.raises(NotUTF8):
        Document.new("a\ud800b")
    good = doc("a b")
    forged = good.model_copy(update={"text": "a\ud800"})
    with pytest.raises(NotUTF8):
        store.put(forged)
    with pytest.raises(InvalidDocument):
        store.put(good.model_copy(update={"text": "a c"}))  # affinity_key no longer matches
    with pytest.raises(InvalidDocument):
        store.put(good.model_copy(update={"bytes": 99}))
    with pytest.raises(InvalidDocument):
        store.put(good.model_copy(update={"text": ""}))
    assert store.count() == 0 and store.get(good.id, "alice") is None


def _inject_put_fault(backend, store, monkeypatch) -> type[Exception]:
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


def test_failed_put_leaves_nothing(backend, monkeypatch):
    store = backend.open()
    d = doc(tokens={"m": 5})
    error = _inject_put_fault(backend, store, monkeypatch)
    with pytest.raises(error):
        store.put(d)
    monkeypatch.undo()
    if backend.name == "redis":
        store._redis.delete(f"{store._p}count")
    assert store.get(d.id, "alice") is None and store.get_meta(d.id, "alice") is None
    assert store.list("alice").items == [] and store.count() == 0 and store.count("alice") == 0
    store.put(d)  # no leftover blocks the same id
    assert store.get(d.id, "alice") == d and store.count() == 1


def test_redis_wrong_type_index_leaves_nothing(redis_url):
    from deployments.documents.backends.redis import RedisDocumentStore

    store = RedisDocumentStore(redis_url, key_prefix=f"test:{uuid.uuid4().hex}:")
    d = doc()
    # Injected corruption: another program wrote a string where the owner
    # index belongs. ZCARD fails on it before the script writes anything.
    store._redis.set(store._index_key("alice"), "oops")
    with pytest.raises(DocumentStoreError):
        store.put(d)
    assert not store._redis.exists(store._meta_key(d.id), store._text_key(d.id))
    assert store.count() == 0
    store.close()


def test_persists_across_reopen(backend):
    first = backend.open()
    d = doc("persist me", metadata={"v": 1}, tokens={"m": 3}, pools={"m": "p"})
    first.put(d)
    first.close()
    with pytest.raises(StoreUnavailable):
        first.get(d.id, "alice")
    second = backend.open()
    assert second.get(d.id, "alice") == d
    assert second.list("alice").items == [d.meta()] and second.count() == 1


def test_concurrent_puts(store):
    per_thread, threads = 10, 8
    barrier = threading.Barrier(threads)

    def work(t: int) -> list[str]:
        barrier.wait()
        ids = []
        for i in range(per_thread):
            d = doc(f"thread {t} doc {i}", owner=f"k{t % 2}")
            store.put(d)
            ids.append(d.id)
        return ids

    with ThreadPoolExecutor(threads) as pool:
        ids = [i for chunk in pool.map(work, range(threads)) for i in chunk]
    assert store.count() == threads * per_thread
    assert store.count("k0") == store.count("k1") == threads * per_thread // 2
    listed = [m.id for o in ("k0", "k1") for m in store.list(o, limit=MAX_PAGE_SIZE).items]
    assert sorted(listed) == sorted(ids)


def test_concurrent_puts_never_overshoot_the_limit(backend):
    store = backend.open(StoreLimits(max_documents=10))
    threads = 24
    barrier = threading.Barrier(threads)

    def work(i: int) -> bool:
        d = doc(f"race {i}", owner=f"k{i % 3}")
        barrier.wait()
        try:
            store.put(d)
            return True
        except StoreFull:
            return False

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(work, range(threads)))
    assert sum(results) == 10 and store.count() == 10


def test_metadata_must_be_json(store):
    with pytest.raises(InvalidDocument):
        store.put(doc(metadata={"x": float("nan")}))
    with pytest.raises(ValidationError):
        doc(metadata={"x": object()})
    assert store.count() == 0


def test_large_document_round_trip(store):
    # About what a 1M-token book weighs; the default limit is 16 MiB.
    text = ("All happy families are alike; each unhappy family is unhappy in its own way. " * 110_000)[:8_000_000]
    d = doc(text, tokens={"m": 1_048_000})
    store.put(d)
    assert store.get(d.id, "alice").text == text
    assert store.get_meta(d.id, "alice").bytes == 8_000_000


def _text_reads(backend, store, action) -> list[str]:
    """What `action` read of document texts, from the backend's own trace."""
    if backend.name == "sqlite":
        statements: list[str] = []
        connect = store._connect

        def traced():
            conn = connect()
            conn.set_trace_callback(statements.append)
            return conn

        store.close()  # drop pooled, untraced connections
        store._closed = False
        store._connect = traced
        action()
        return [s for s in statements if "texts" in s]
    store._redis.config_resetstat()
    action()
    stats = store._redis.info("commandstats")
    return [c for c in ("cmdstat_get", "cmdstat_mget", "cmdstat_getrange") if c in stats]


def test_listing_and_meta_never_read_text(backend):
    store = backend.open()
    d = doc("x" * 100_000)
    store.put(d)
    assert _text_reads(backend, store, lambda: (store.list("alice"), store.get_meta(d.id, "alice"))) == []
    assert _text_reads(backend, store, lambda: store.get(d.id, "alice")) != []  # the probe sees reads


# ---------------------------------------------------------------- token ids

LAYOUT = "internlm2_5-7b-chat-1m@3f9a1c2b"


def ids_blob(*ids: int) -> bytes:
    return array("I", ids).tobytes()


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


def test_token_id_limit_must_hold_a_full_document():
    StoreLimits(max_document_tokens=1_048_576, max_token_id_bytes=4 * 1_048_576)
    with pytest.raises(ValidationError, match="max_token_id_bytes"):
        StoreLimits(max_document_tokens=1_048_576, max_token_id_bytes=4 * 1_048_576 - 1)
    assert StoreLimits().max_token_id_bytes >= 4 * StoreLimits().max_document_tokens


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
        error = _inject_put_fault(backend, store, monkeypatch)
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


def test_redis_put_token_ids_wrong_type_changes_nothing(redis_url):
    from deployments.documents.backends.redis import RedisDocumentStore

    store = RedisDocumentStore(redis_url, key_prefix=f"test:{uuid.uuid4().hex}:")
    d = doc()
    store.put(d)
    # Injected corruption where the ids hash belongs: a retried put's only
    # write fails, and the document is as it was.
    store._redis.set(store._ids_key(d.id), "oops")
    with pytest.raises(DocumentStoreError):
        store.put(d, token_ids={LAYOUT: ids_blob(1)})
    with pytest.raises(DocumentStoreError):
        store.put_token_ids(d.id, "alice", LAYOUT, ids_blob(1))
    assert store.get(d.id, "alice") == d and store.count() == 1
    store.close()


def test_token_ids_persist_across_reopen(backend):
    first = backend.open()
    d = doc()
    first.put(d, token_ids={LAYOUT: ids_blob(7, 8)})
    first.close()
    assert backend.open().get_token_ids(d.id, "alice", LAYOUT) == ids_blob(7, 8)


def test_sqlite_migrates_a_version_1_database(tmp_path):
    import sqlite3

    from deployments.documents.backends.sqlite import DB_FILE, SCHEMA_VERSION, SQLiteDocumentStore

    d = doc()
    with SQLiteDocumentStore(tmp_path) as store:
        store.put(d)
    # Turn the file back into what schema 1 left: no token_ids table.
    conn = sqlite3.connect(tmp_path / DB_FILE)
    conn.execute("DROP TABLE token_ids")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    with SQLiteDocumentStore(tmp_path) as store:
        assert store.get(d.id, "alice") == d
        assert store.put_token_ids(d.id, "alice", LAYOUT, ids_blob(1))
        assert store.get_token_ids(d.id, "alice", LAYOUT) == ids_blob(1)
    conn = sqlite3.connect(tmp_path / DB_FILE)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (2,)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreUnavailable, match="schema version"):
        SQLiteDocumentStore(tmp_path)
