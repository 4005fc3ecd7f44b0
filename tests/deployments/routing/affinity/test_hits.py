"""Counting follow-ups that reached their key's previous replica."""

from deployments.routing.affinity.hits import AffinityHits


def test_follow_ups_are_hits_or_misses_first_requests_neither():
    results = []
    hits = AffinityHits(lambda pool, hit: results.append((pool, hit)))
    hits.record("p", "k", "r1")
    hits.record("p", "k", "r1")
    hits.record("p", "k", "r2")
    hits.record("p", "other", "r2")
    assert results == [("p", True), ("p", False)]


def test_memory_is_bounded_oldest_key_first():
    results = []
    hits = AffinityHits(lambda pool, hit: results.append(hit), memory=2)
    for key in ("a", "b", "c"):
        hits.record("p", key, "r")
    hits.record("p", "a", "r")  # forgotten: counts as a first request
    hits.record("p", "c", "r")
    assert results == [True]
