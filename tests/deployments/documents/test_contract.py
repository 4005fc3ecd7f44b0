"""The DocumentStore contract, run against every backend (see conftest): documents."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic import ValidationError

from cluster.config.documents import StoreLimits
from deployments.documents.errors import (
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
from tests.support.documents import doc, inject_put_fault


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


def test_failed_put_leaves_nothing(backend, monkeypatch):
    store = backend.open()
    d = doc(tokens={"m": 5})
    error = inject_put_fault(backend, store, monkeypatch)
    with pytest.raises(error):
        store.put(d)
    monkeypatch.undo()
    if backend.name == "redis":
        store._redis.delete(f"{store._p}count")
    assert store.get(d.id, "alice") is None and store.get_meta(d.id, "alice") is None
    assert store.list("alice").items == [] and store.count() == 0 and store.count("alice") == 0
    store.put(d)  # no leftover blocks the same id
    assert store.get(d.id, "alice") == d and store.count() == 1


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
