"""Long-document QA on the real stack: upload once, ask many, from the prefix cache."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import MAX_DOCUMENT_BYTES
from tests.e2e.helpers import prefix_cache_hits, wait_until

pytestmark = pytest.mark.e2e

IL25 = "internlm2_5-7b-chat-1m"
IL3 = "internlm3-8b-instruct"


def _text(words: int, seed: int = 0) -> str:
    return " ".join(f"clause{seed}_{i % 97} obliges party{i % 7}." for i in range(words // 3))


@pytest.fixture(scope="module")
def document(http):
    response = http.post("/v1/documents", json={"text": _text(1200), "metadata": {"title": "contract"}})
    assert response.status_code == 201, response.text
    return response.json()


def test_upload_counts_every_model_and_picks_pools(document, cluster):
    assert set(document["tokens"]) == {IL25, IL3}
    assert document["id"].startswith("doc-")
    for model, count in document["tokens"].items():
        pool = cluster.config.pool(document["pool"][model])
        assert pool.model == model and pool.min_tokens <= count <= pool.max_tokens


def test_get_and_list(http, document):
    meta = http.get(f"/v1/documents/{document['id']}").json()
    assert meta["tokens"] == document["tokens"] and meta["metadata"] == {"title": "contract"}
    assert "text" not in meta
    second = http.post("/v1/documents", json={"text": "a short second document", "model": IL3}).json()
    seen, cursor = [], None
    while True:
        page = http.get("/v1/documents", params={"limit": 1, **({"after": cursor} if cursor else {})}).json()
        seen += [d["id"] for d in page["data"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert document["id"] in seen and second["id"] in seen
    assert second["tokens"].keys() == {IL3}


def test_questions_share_the_cached_prefix_on_one_replica(http, cluster, document):
    doc_id = document["id"]
    first = http.post(f"/v1/documents/{doc_id}/ask", json={"question": "Who is obliged?", "max_tokens": 4})
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["object"] == "chat.completion" and answer["choices"][0]["message"]["content"]
    # The prompt is the stored prefix plus the question's few tokens.
    assert document["tokens"][IL25] < answer["usage"]["prompt_tokens"] < document["tokens"][IL25] + 40
    replica = first.headers["x-replica"]
    hits_before = prefix_cache_hits(cluster.metrics_url)
    for question in ("What does clause 3 say?", "Which party pays?", "Is there a deadline?"):
        follow = http.post(f"/v1/documents/{doc_id}/ask", json={"question": question, "max_tokens": 4})
        assert follow.status_code == 200
        assert follow.headers["x-replica"] == replica
        assert follow.headers["x-pool"] == document["pool"][IL25]
    # Each follow-up read (nearly) the whole document prefix from the cache
    # (whole KV blocks of it: block sizes differ by backend, hence 90 %).
    # Ray exports engine metrics every few seconds: poll until they show it.
    wanted = hits_before + 3 * 0.9 * document["tokens"][IL25]
    wait_until(lambda: prefix_cache_hits(cluster.metrics_url) >= wanted, 60,
               "vLLM's prefix-cache hits to cover the three follow-ups")


def test_several_questions_come_back_in_order(http, document):
    questions = ["First?", "Second?", "Third?"]
    response = http.post(f"/v1/documents/{document['id']}/ask",
                         json={"questions": questions, "max_tokens": 3, "model": IL3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert body["usage"]["completion_tokens"] <= 9
    assert len(response.headers["x-replica"].split(",")) == 1


def test_streaming_ask_with_two_questions(http, document):
    with http.stream("POST", f"/v1/documents/{document['id']}/ask",
                     json={"questions": ["A?", "B?"], "max_tokens": 3, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    indexes = {c["index"] for chunk in chunks for c in chunk["choices"]}
    assert indexes == {0, 1}
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)


def test_multipart_upload_and_delete(http):
    files = {"file": ("notes.txt", b"Minutes of the meeting. Everyone agreed.", "text/plain")}
    response = http.post("/v1/documents", files=files, data={"model": IL25, "metadata": '{"k": 1}'})
    assert response.status_code == 201, response.text
    doc_id = response.json()["id"]
    assert http.delete(f"/v1/documents/{doc_id}").json()["deleted"] is True
    assert http.get(f"/v1/documents/{doc_id}").status_code == 404
    assert http.post(f"/v1/documents/{doc_id}/ask", json={"question": "x"}).status_code == 404


def _count(http) -> int:
    total, cursor = 0, None
    while True:
        page = http.get("/v1/documents", params={"limit": 100, **({"after": cursor} if cursor else {})}).json()
        total += len(page["data"])
        cursor = page["next_cursor"]
        if not cursor:
            return total


@pytest.mark.parametrize(
    "kwargs, status, needle",
    [
        ({"json": {"text": ""}}, 422, "empty"),
        ({"json": {"text": "x", "model": "nope"}}, 404, "does not exist"),
        ({"json": {"text": _text(14000), "model": IL25}}, 413, "limit"),
        ({"json": {"text": "é" * (MAX_DOCUMENT_BYTES // 2 + 10)}}, 413, str(MAX_DOCUMENT_BYTES)),
        ({"files": {"file": ("bad.txt", b"\xff\xfe\xfa not utf-8", "text/plain")}}, 415, "UTF-8"),
        ({"json": {"txt": "typo"}}, 422, "text"),
    ],
)
def test_bad_uploads_are_refused_and_leave_nothing(http, kwargs, status, needle):
    before = _count(http)
    response = http.post("/v1/documents", **kwargs)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]["message"]
    assert _count(http) == before


def test_ask_bad_input(http, document):
    doc_id = document["id"]
    assert http.post("/v1/documents/doc-000000000000000000000000/ask", json={"question": "x"}).status_code == 404
    both = http.post(f"/v1/documents/{doc_id}/ask", json={"question": "x", "questions": ["y"]})
    assert both.status_code == 422 and "exactly one" in both.json()["error"]["message"]
    too_long = http.post(f"/v1/documents/{doc_id}/ask", json={"question": "x", "max_tokens": 100000})
    assert too_long.status_code == 413 and too_long.json()["error"]["param"] == "question"
