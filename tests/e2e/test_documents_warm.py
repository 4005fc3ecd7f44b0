"""Documents warmed at upload on the real stack: states, replica, errors.

A warm-up prefills the document's [system][document] prefix on the replica
the affinity router picks for it; the first question then lands there and
reads the prefix from the cache (the time saved is benchmarks/cpu/doc_qa.py's
``--warm``).
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.helpers import pool_in_flight
from deployments.errors import ErrorCode

pytestmark = pytest.mark.e2e

IL25 = "internlm2_5-7b-chat-1m"
IL3 = "internlm3-8b-instruct"
ORDER = ["pending", "warming", "ready"]


def _text(words: int, seed: int) -> str:
    return " ".join(f"warm{seed}_{i % 97} obliges party{i % 7}." for i in range(words // 3))


def _follow(http, doc_id: str, pool: str, timeout_s: float = 300) -> tuple[list[str], dict, list[int]]:
    """Poll the document until its warm-up ends: the states seen in order, the
    final state, and the pool's in-flight count whenever it was warming."""
    seen, in_flight = [], []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        warm = http.get(f"/v1/documents/{doc_id}").json()["warm"]
        if not seen or seen[-1] != warm["status"]:
            seen.append(warm["status"])
        if warm["status"] in ("ready", "failed"):
            return seen, warm, in_flight
        if warm["status"] == "warming":
            in_flight.append(pool_in_flight(http, pool))
        time.sleep(0.05)
    raise AssertionError(f"warm-up of {doc_id} still {seen[-1]} after {timeout_s} s")


def test_upload_with_warm_prefills_the_prefix_on_its_replica(http):
    upload = http.post("/v1/documents", json={"text": _text(1900, 1), "model": IL25, "warm": True})
    assert upload.status_code == 201, upload.text
    doc = upload.json()
    pool = doc["pool"][IL25]
    assert pool == "il25-long"
    # Returned at once: before the engine had even taken the warm-up.
    assert doc["warm"]["status"] == "pending" and doc["warm"]["pool"] == pool and doc["warm"]["model"] == IL25

    seen, warm, in_flight = _follow(http, doc["id"], pool)
    assert seen == [s for s in ORDER if s in seen] and seen[-1] == "ready", seen
    assert "warming" in seen, f"a {doc['tokens'][IL25]}-token prefill was never seen warming: {seen}"
    # Admission counted the warm-up like any request.
    assert in_flight and max(in_flight) == 1
    assert warm["replica"].startswith(f"pool-{pool}#") and warm["error"] is None

    answer = http.post(f"/v1/documents/{doc['id']}/ask", json={"question": "Who is obliged?", "max_tokens": 2})
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-replica"] == warm["replica"]
    # The first question read (nearly) the whole prefix from the cache (il25-long
    # reports its cache hits in usage: tests/e2e/conftest.py).
    cached = answer.json()["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached >= 0.9 * doc["tokens"][IL25], f"first question read only {cached} tokens from the cache"


def test_warm_an_uploaded_document_on_the_replica_its_questions_reach(http):
    doc = http.post("/v1/documents", json={"text": _text(600, 2), "model": IL25}).json()
    assert http.get(f"/v1/documents/{doc['id']}").json()["warm"] is None
    response = http.post(f"/v1/documents/{doc['id']}/warm")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["object"] == "document.warm" and body["id"] == doc["id"] and body["status"] == "pending"
    assert body["pool"] == doc["pool"][IL25] == "il25-short"
    seen, warm, _ = _follow(http, doc["id"], body["pool"])
    assert seen[-1] == "ready", (seen, warm)
    # il25-short has two replicas: every question goes where the prefix was warmed.
    for question in ("Who?", "What?", "When?"):
        answer = http.post(f"/v1/documents/{doc['id']}/ask", json={"question": question, "max_tokens": 2})
        assert answer.status_code == 200 and answer.headers["x-replica"] == warm["replica"]
    listed = http.get("/v1/documents", params={"limit": 100}).json()["data"]
    assert next(d for d in listed if d["id"] == doc["id"])["warm"] == warm


def test_warm_errors(http):
    missing = http.post("/v1/documents/doc-000000000000000000000000/warm")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == ErrorCode.DOCUMENT_NOT_FOUND
    # ~10.9k tokens: past every il25 pool, inside il3-long.
    doc = http.post("/v1/documents", json={"text": _text(2300, 3)}).json()
    assert set(doc["tokens"]) == {IL3}
    too_large = http.post(f"/v1/documents/{doc['id']}/warm", json={"model": IL25})
    assert too_large.status_code == 413, too_large.text
    error = too_large.json()["error"]
    assert error["code"] == ErrorCode.DOCUMENT_TOO_LARGE and error["type"] == "request_too_large"
    assert http.get(f"/v1/documents/{doc['id']}").json()["warm"] is None
    unknown = http.post(f"/v1/documents/{doc['id']}/warm", json={"model": "nope"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == ErrorCode.MODEL_NOT_FOUND
    typo = http.post(f"/v1/documents/{doc['id']}/warm", json={"modle": IL3})
    assert typo.status_code == 422 and "modle" in typo.json()["error"]["message"]
    bad_flag = http.post("/v1/documents", json={"text": "x", "warm": "soon"})
    assert bad_flag.status_code == 422
    fits = http.post(f"/v1/documents/{doc['id']}/warm", json={"model": IL3})
    assert fits.status_code == 202 and fits.json()["pool"] == "il3-long"
    assert _follow(http, doc["id"], "il3-long")[1]["status"] == "ready"
