"""Warm-ups of documents: the states a warm-up records, over a fake request path."""

from __future__ import annotations

import asyncio

import pytest

from cluster.config import load_config, profile_path
from deployments.documents.backends.sqlite import SQLiteDocumentStore
from deployments.documents.warm import Warmer
from deployments.errors import APIError, ErrorCode
from deployments.routing.bands import BandPolicy
from deployments.routing.rope_base import RopeBasePolicy
from tests.support.documents import doc

IL25 = "internlm2_5-7b-chat-1m"


class FakePath:
    """The request path's surface a warm-up uses; ``outcomes`` is what each prefill does."""

    def __init__(self, outcomes):
        self.cluster = load_config(str(profile_path("cpu-demo")))
        self.bands = BandPolicy(self.cluster)
        self.rope = RopeBasePolicy(self.cluster)
        self.outcomes = list(outcomes)
        self.calls = []
        self.seen_states = []

    def engine_request(self, model, decision, ids, sampling):
        return {"model": model, "max_tokens": decision.max_tokens, "ids": ids, **sampling}

    def timeout_s(self, pool):
        return 30.0

    async def prefill(self, decision, request, *, document_key, on_replica):
        self.calls.append((decision.pool.name, request, document_key))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        on_replica(outcome)
        # The engine runs a while: the warming state lands meanwhile (bounded wait).
        for _ in range(200):
            status = self.store.get_meta(self.doc_id, "alice").warm.status
            if status != "pending":
                break
            await asyncio.sleep(0.01)
        self.seen_states.append(status)
        return outcome


def _warm(tmp_path, outcomes, tokens=5000):
    path = FakePath(outcomes)
    store = SQLiteDocumentStore(tmp_path)
    d = doc()
    store.put(d)
    path.store, path.doc_id = store, d.id
    warmer = Warmer(path, store)

    async def go():
        decision = warmer.decision(IL25, tokens, 128)
        state = await warmer.start(d.meta(), "alice", IL25, list(range(tokens)), decision)
        assert state.status == "pending" and state.pool == decision.pool.name
        await asyncio.gather(*warmer._tasks)

    asyncio.run(go())
    return path, store.get_meta(d.id, "alice").warm


def test_warm_up_goes_pending_warming_ready(tmp_path):
    path, warm = _warm(tmp_path, ["pool-il25-long#r1"])
    assert (warm.status, warm.pool, warm.replica, warm.error) == ("ready", "il25-long", "pool-il25-long#r1", None)
    assert path.seen_states == ["warming"]
    pool, request, key = path.calls[0]
    assert pool == "il25-long" and request["max_tokens"] == 1 and request["stream"] is False
    assert key == doc().affinity_key


def test_full_pool_is_retried_then_engine_refusal_fails(tmp_path):
    full = APIError(ErrorCode.POOL_OVERLOADED, "pool il25-long is full", headers={"retry-after": "0"})
    path, warm = _warm(tmp_path, [full, "pool-il25-long#r2"])
    assert warm.status == "ready" and len(path.calls) == 2
    refused = APIError(ErrorCode.ENGINE_REJECTED, "bad prompt")
    _, warm = _warm(tmp_path / "b", [refused])
    assert (warm.status, warm.replica) == ("failed", None) and warm.error == "engine_rejected: bad prompt"


def test_engine_failure_is_recorded(tmp_path):
    _, warm = _warm(tmp_path, [RuntimeError("actor died")])
    assert warm.status == "failed" and "RuntimeError: actor died" in warm.error


def test_document_too_large_for_any_pool_is_413(tmp_path):
    warmer = Warmer(FakePath([]), SQLiteDocumentStore(tmp_path))
    with pytest.raises(APIError) as e:
        warmer.decision(IL25, 10_200, 128)
    assert e.value.status_code == 413 and e.value.code == "document_too_large"


def test_warm_up_is_rotated_as_the_documents_questions_are(tmp_path):
    # cpu-demo's il25-long rotates each prompt for its own length, except a
    # document's questions: one length (prefix + question budget) for all, so
    # the warm-up must fill the cache under that length and salt.
    path = FakePath([])
    decision = Warmer(path, SQLiteDocumentStore(tmp_path)).decision(IL25, 5000, 128)
    assert decision.pool.name == "il25-long" and decision.rope.seq_len == 5128
    for question_tokens in (9, 60):
        question = path.rope.choose(decision.pool, 5000 + question_tokens, document_seq_len=5128)
        assert question.cache_salt(None) == decision.rope.cache_salt(None)
        assert question.xargs() == decision.rope.xargs()
