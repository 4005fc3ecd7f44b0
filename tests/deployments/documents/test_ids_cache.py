"""PrefixIdsCache: a document's prefix ids kept per ingress replica, bounded by tokens."""

from deployments.documents.ids_cache import PrefixIdsCache


def test_hits_return_the_kept_ids_and_misses_none():
    cache = PrefixIdsCache(max_tokens=100)
    ids = list(range(10))
    cache.put("doc-a", "m@1", ids)
    assert cache.get("doc-a", "m@1") is ids
    assert cache.get("doc-a", "m@2") is None
    assert cache.get("doc-b", "m@1") is None


def test_least_recently_asked_goes_first_past_the_bound():
    cache = PrefixIdsCache(max_tokens=25)
    cache.put("a", "m", [1] * 10)
    cache.put("b", "m", [2] * 10)
    cache.get("a", "m")  # a is now the most recent
    cache.put("c", "m", [3] * 10)  # 30 > 25: b, the oldest, goes
    assert (cache.get("a", "m"), cache.get("b", "m")) == ([1] * 10, None)
    assert cache.tokens == 20


def test_a_document_larger_than_the_bound_is_not_kept_and_zero_disables():
    cache = PrefixIdsCache(max_tokens=5)
    cache.put("a", "m", [1] * 6)
    assert cache.get("a", "m") is None and cache.tokens == 0
    off = PrefixIdsCache(max_tokens=0)
    off.put("a", "m", [1])
    assert off.get("a", "m") is None


def test_a_deleted_document_is_forgotten_in_every_layout():
    cache = PrefixIdsCache(max_tokens=100)
    cache.put("a", "m1", [1, 2])
    cache.put("a", "m2", [1, 2, 3])
    cache.put("b", "m1", [4])
    cache.discard("a")
    assert (cache.get("a", "m1"), cache.get("a", "m2"), cache.get("b", "m1")) == (None, None, [4])
    assert cache.tokens == 1
    cache.put("b", "m1", [4, 5])  # replaced, counted once
    assert cache.tokens == 2
