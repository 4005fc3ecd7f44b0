"""The ingress's HTTP layer in-process: auth, body limits, encodings, refusals.

The real FastAPI app and a real Ingress (real tokenizers, band policy) are
used; no pool is attached, so these are exactly the paths that must answer
before any engine is involved.
"""

import pytest
from fastapi.testclient import TestClient

from cluster.config import load_config, profile_path
from deployments.ingress.http import create_app
from deployments.ingress.service import Ingress
from deployments.errors import ErrorCode

KEY = "sk-test-123"
# Two keys of one named principal, as during a rotation (deployments/api_key_file.py).
ALICE_OLD, ALICE_NEW = "lc-alice-old-0123", "lc-alice-new-0123"
IL25 = "internlm2_5-7b-chat-1m"


@pytest.fixture(scope="module")
def client(demo_models, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("LONGCTX_API_KEYS", f"{KEY}, other-key, alice:{ALICE_OLD}, alice:{ALICE_NEW}")
    config = load_config(
        profile_path("cpu-demo"),
        ["ingress.auth.enabled=true", "ingress.max_body_bytes=4096",
         f"documents.store.data_dir={tmp_path_factory.mktemp('docs')}"],
        env={},
    )
    ingress = Ingress(config.model_dump(mode="json"), pool_handles={})
    with TestClient(create_app(ingress)) as test_client:
        test_client.headers["authorization"] = f"Bearer {KEY}"
        yield test_client
    mp.undo()


def test_missing_or_wrong_key_is_401_json(client):
    for headers in ({"authorization": ""}, {"authorization": "Bearer nope"}, {"authorization": "Basic xyz"}):
        response = client.get("/v1/models", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == ErrorCode.INVALID_API_KEY
        assert "nope" not in response.text


def test_valid_key_and_open_health_probe(client):
    assert client.get("/v1/models").status_code == 200
    assert client.get("/healthz", headers={"authorization": ""}).status_code == 200


def test_declared_body_over_limit_is_413(client):
    response = client.post("/v1/chat/completions", content=b"x" * 5000,
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "limit of 4096 bytes" in response.json()["error"]["message"]


def test_chunked_body_over_limit_is_413_while_streaming(client):
    chunks = (b"y" * 1000 for _ in range(10))
    response = client.post("/v1/chat/completions", content=chunks,
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == ErrorCode.BODY_TOO_LARGE


def test_non_utf8_body_is_415(client):
    response = client.post("/v1/chat/completions", content=b'{"model": "\xff\xfe"}',
                           headers={"content-type": "application/json"})
    assert response.status_code == 415
    assert "UTF-8" in response.json()["error"]["message"]


def test_over_length_is_refused_before_any_pool(client):
    # 3,000 words of prompt do not fit the 2,048-token short band plus a
    # 9,000-token completion in the 10,240 limit: refused by count alone.
    body = {"model": IL25, "messages": [{"role": "user", "content": "word " * 600}], "max_tokens": 10000}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 413
    assert "limit of 10240" in response.json()["error"]["message"]
    assert int(response.headers["x-prompt-tokens"]) > 0


@pytest.mark.parametrize("method, path", [("get", "/nope"), ("delete", "/v1/models"), ("put", "/v1/chat/completions")])
def test_unknown_routes_and_methods_are_json(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code in (404, 405)
    assert response.json()["error"]["message"]


def test_documents_belong_to_the_key_that_uploaded_them(client):
    other = {"authorization": "Bearer other-key"}
    uploaded = client.post("/v1/documents", json={"text": "Private notes of key one.", "model": IL25})
    assert uploaded.status_code == 201, uploaded.text
    doc_id = uploaded.json()["id"]
    assert client.get(f"/v1/documents/{doc_id}").status_code == 200
    assert client.get(f"/v1/documents/{doc_id}", headers=other).status_code == 404
    assert doc_id not in [d["id"] for d in client.get("/v1/documents", headers=other).json()["data"]]
    assert client.post(f"/v1/documents/{doc_id}/ask", json={"question": "x"}, headers=other).status_code == 404
    assert client.delete(f"/v1/documents/{doc_id}", headers=other).status_code == 404
    assert client.delete(f"/v1/documents/{doc_id}").json()["deleted"] is True


def test_documents_belong_to_the_named_principal_whichever_of_its_keys(client):
    old, new = ({"authorization": f"Bearer {key}"} for key in (ALICE_OLD, ALICE_NEW))
    uploaded = client.post("/v1/documents", json={"text": "Alice's notes.", "model": IL25}, headers=old)
    assert uploaded.status_code == 201, uploaded.text
    doc_id = uploaded.json()["id"]
    assert client.get(f"/v1/documents/{doc_id}", headers=new).status_code == 200
    assert doc_id in [d["id"] for d in client.get("/v1/documents", headers=new).json()["data"]]
    assert client.get(f"/v1/documents/{doc_id}").status_code == 404  # another principal
    assert client.delete(f"/v1/documents/{doc_id}", headers=new).json()["deleted"] is True


def test_keys_never_reach_logs(client, caplog):
    caplog.set_level("DEBUG")
    client.get("/v1/models", headers={"authorization": "Bearer sk-wrong-secret"})
    client.post("/v1/documents", json={"text": "hello", "model": IL25})
    assert "sk-wrong-secret" not in caplog.text and KEY not in caplog.text
