"""The Redis backend under corruption no client would cause: nothing is left half-written."""

from __future__ import annotations

import uuid

import pytest

pytest.importorskip("redis")

from deployments.documents.backends.redis import RedisDocumentStore  # noqa: E402
from deployments.documents.errors import DocumentStoreError  # noqa: E402
from tests.support.documents import LAYOUT, doc, ids_blob  # noqa: E402


def test_redis_wrong_type_index_leaves_nothing(redis_url):
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


def test_redis_put_token_ids_wrong_type_changes_nothing(redis_url):
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


def test_redis_at_maxmemory_is_store_unavailable_and_writes_nothing(redis_url):
    """Redis at maxmemory with noeviction (as the chart runs it) refuses the
    write: the API's 503 store_unavailable naming the limit to set, not a 500."""
    from deployments.documents.errors import StoreOutOfMemory, StoreUnavailable

    store = RedisDocumentStore(redis_url, key_prefix=f"test:{uuid.uuid4().hex}:")
    r = store._redis
    before = r.config_get("maxmemory")["maxmemory"], r.config_get("maxmemory-policy")["maxmemory-policy"]
    d = doc()
    try:
        r.config_set("maxmemory-policy", "noeviction")
        # Below what Redis already uses: every write is refused from here on.
        r.config_set("maxmemory", int(r.info("memory")["used_memory"]) // 2)
        with pytest.raises(StoreOutOfMemory, match="max_total_bytes") as refused:
            store.put(d)
        assert isinstance(refused.value, StoreUnavailable) and refused.value.http_status == 503
    finally:
        r.config_set("maxmemory", before[0])
        r.config_set("maxmemory-policy", before[1])
    assert store.count() == 0
    assert not r.exists(store._meta_key(d.id), store._text_key(d.id))
    store.put(d)
    assert store.get(d.id, d.owner) == d
    store.close()
