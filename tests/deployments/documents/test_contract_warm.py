"""The DocumentStore contract, run against every backend (see conftest): warm states."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deployments.documents.records import WarmState
from tests.support.documents import LAYOUT, doc, ids_blob


def _warm(status: str = "pending", **kw) -> WarmState:
    return WarmState(status=status, model="m", pool="m-long", updated=1_700_000_000, **kw)


def test_new_document_is_not_warm(store):
    d = doc()
    store.put(d)
    assert store.get_meta(d.id, "alice").warm is None


def test_set_warm_replaces_and_shows_everywhere(store):
    d = doc(tokens={"m": 10}, pools={"m": "m-long"})
    store.put(d)
    for state in (_warm(), _warm("warming", replica="pool-m-long#abc"),
                  _warm("ready", replica="pool-m-long#abc")):
        assert store.set_warm(d.id, "alice", state) is True
        assert store.get_meta(d.id, "alice").warm == state
    ready = store.get_meta(d.id, "alice")
    assert store.get(d.id, "alice").warm == ready.warm
    assert store.list("alice").items == [ready]
    # Other updates keep it.
    store.update_counts(d.id, "alice", tokens={"n": 3})
    assert store.put_token_ids(d.id, "alice", LAYOUT, ids_blob(4))
    assert store.get_meta(d.id, "alice").warm == ready.warm
    failed = _warm("failed", error="pool_overloaded: full")
    assert store.set_warm(d.id, "alice", failed)
    assert store.get_meta(d.id, "alice").warm == failed


def test_set_warm_needs_the_owners_document(store):
    d = doc()
    store.put(d)
    for owner in ("bob", None):
        assert store.set_warm(d.id, owner, _warm()) is False
    assert store.set_warm("doc-" + "0" * 24, "alice", _warm()) is False
    assert store.set_warm("../etc", "alice", _warm()) is False
    assert store.get_meta(d.id, "alice").warm is None


def test_delete_drops_the_warm_state(store):
    d = doc()
    store.put(d)
    store.set_warm(d.id, "alice", _warm("ready", replica="r"))
    assert store.delete(d.id, "alice")
    # The same document put again (a retried upload) comes back cold.
    store.put(d)
    assert store.get_meta(d.id, "alice").warm is None


def test_put_stores_a_given_warm_state(store):
    d = doc().model_copy(update={"warm": _warm()})
    store.put(d)
    assert store.get(d.id, "alice") == d


def test_invalid_warm_states_are_refused(store):
    d = doc()
    store.put(d)
    with pytest.raises(ValidationError):
        WarmState(status="hot", model="m", pool="p", updated=0)
    with pytest.raises(ValidationError):
        WarmState(status="ready", model="m", pool="p", updated=0, extra=1)
    with pytest.raises(TypeError):
        store.set_warm(d.id, "alice", {"status": "ready"})
    assert store.get_meta(d.id, "alice").warm is None


def test_warm_survives_reopen(backend):
    d = doc()
    backend.open().put(d)
    assert backend.open().set_warm(d.id, "alice", _warm("ready", replica="r"))
    assert backend.open().get_meta(d.id, "alice").warm == _warm("ready", replica="r")
