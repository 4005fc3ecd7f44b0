"""The API's one error vocabulary: ErrorCode, its statuses, its use and its documentation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from deployments.errors import APIError, ErrorCode, error_body, error_code_table, install_error_handlers

REPO = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for p in (REPO / "deployments").rglob("*.py"))


def test_every_code_is_a_client_or_server_error():
    assert len({c.value for c in ErrorCode}) == len(ErrorCode)
    for code in ErrorCode:
        assert 400 <= code.status < 600 and code.meaning, code
        assert re.fullmatch(r"[a-z_]+", code.value), code


def test_an_error_answers_with_its_codes_status():
    error = APIError(ErrorCode.POOL_OVERLOADED, "full", headers={"retry-after": "1"})
    response = error.response()
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
    assert error_body(ErrorCode.POOL_OVERLOADED, "full") == {
        "error": {"message": "full", "type": "rate_limit_error", "code": "pool_overloaded", "param": None}}
    with pytest.raises(ValueError):
        APIError("no_such_code", "x")


def test_no_code_is_written_as_a_string():
    """Raisers name ErrorCode members; a literal `code="..."` would escape the vocabulary."""
    literal = re.compile(r"""\bcode\s*=\s*["']""")
    offenders = [f"{p.relative_to(REPO)}:{n}" for p in SOURCES
                 for n, line in enumerate(p.read_text().splitlines(), 1) if literal.search(line)]
    assert offenders == []


def test_every_code_is_used():
    text = "\n".join(p.read_text() for p in SOURCES if p.name != "errors.py")
    text += (REPO / "deployments" / "errors.py").read_text().split("class APIError")[1]
    unused = [c.name for c in ErrorCode if f"ErrorCode.{c.name}" not in text]
    assert unused == []


def test_docs_list_every_code_with_its_status():
    doc = (REPO / "docs" / "api.md").read_text()
    assert error_code_table() in doc, "docs/api.md's error-code table differs from deployments.errors.ErrorCode"


def test_starlette_errors_get_codes():
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/v1/echo")
    async def echo(body: dict):
        return body

    @app.get("/v1/boom")
    async def boom():
        raise RuntimeError("a fault of the ingress")

    client = TestClient(app, raise_server_exceptions=False)
    answers = {
        ErrorCode.NOT_FOUND: client.get("/v1/nothing"),
        ErrorCode.METHOD_NOT_ALLOWED: client.get("/v1/echo"),
        ErrorCode.INVALID_BODY: client.post("/v1/echo", content=b"{", headers={"content-type": "application/json"}),
        ErrorCode.INVALID_ENCODING: client.post("/v1/echo", content=b'{"a": "\xff"}',
                                                headers={"content-type": "application/json"}),
        ErrorCode.INVALID_REQUEST: client.post("/v1/echo", json=[1]),
        ErrorCode.INTERNAL_ERROR: client.get("/v1/boom"),
    }
    for code, response in answers.items():
        assert (response.status_code, response.json()["error"]["code"]) == (code.status, code), response.text
