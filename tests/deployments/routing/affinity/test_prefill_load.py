"""PrefillLoad: outstanding prefill tokens per replica, by request id."""

from deployments.routing.affinity.prefill_load import PrefillLoad


def test_tokens_add_up_per_replica_and_go_when_the_request_finishes():
    load = PrefillLoad()
    load.add("r1", "a", 100)
    load.add("r2", "a", 50)
    load.add("r3", "b", 7)
    assert (load.tokens("a"), load.tokens("b"), load.tokens("c")) == (150, 7, 0)
    load.finish("r1")
    load.finish("r1")  # finished twice, or never known: no effect
    load.finish("unknown")
    assert (load.tokens("a"), load.tokens("b")) == (50, 7)


def test_a_request_counted_again_moves_to_its_latest_replica():
    load = PrefillLoad()
    load.add("r1", "a", 100)  # first choice
    load.add("r1", "b", 100)  # Serve routed it elsewhere
    assert (load.tokens("a"), load.tokens("b")) == (0, 100)


def test_replicas_that_left_are_forgotten():
    load = PrefillLoad()
    load.add("r1", "a", 100)
    load.add("r2", "b", 10)
    load.retain(["b"])
    assert (load.tokens("a"), load.tokens("b")) == (0, 10)
    load.add("r3", "a", -5)  # never negative
    assert load.tokens("a") == 0
