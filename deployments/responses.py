"""What the API answers, for its OpenAPI document: success bodies and the errors of each route.

The routes return ``Response`` objects (JSON, or SSE when streaming), so
FastAPI cannot infer their bodies; these models and ``answers`` put them in
``/openapi.json`` (the documents' own bodies: deployments/documents/responses.py), where clients and the schema-driven fuzz test
(tests/e2e/test_fuzz.py, which checks every answer against it) read them.
Documentation only: nothing here filters or validates an answer at run time.

Bodies allow extra fields: the engine's answers carry more than the fields
named here, and vLLM adds fields between releases.
"""

from __future__ import annotations

from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict, Field

from deployments.errors import ErrorCode


class OpenBody(BaseModel):
    """An answer's body: the named fields and whatever else the engine adds."""

    model_config = ConfigDict(extra="allow")


class Usage(OpenBody):
    prompt_tokens: int
    completion_tokens: int | None = None
    total_tokens: int


class ChatMessageOut(OpenBody):
    role: str
    content: str | None = None


class ChatChoice(OpenBody):
    index: int
    message: ChatMessageOut
    finish_reason: str | None = None


class ChatCompletion(OpenBody):
    """A chat completion; ``choices[i]`` answers question ``i`` of a document ask."""

    id: str
    object: str = Field(description="`chat.completion`")
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage | None = None


class CompletionChoice(OpenBody):
    index: int
    text: str
    finish_reason: str | None = None


class Completion(OpenBody):
    id: str
    object: str = Field(description="`text_completion`")
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: ErrorCode = Field(description="One of the API's error codes (docs/api.md, Error codes).")
    param: str | None = Field(description="The request field or header at fault, when there is one.")


class ErrorResponse(BaseModel):
    """Every error's body, OpenAI's shape."""

    error: ErrorDetail


class Health(BaseModel):
    status: str


class ModelCard(OpenBody):
    id: str
    object: str
    created: int
    owned_by: str
    max_model_len: int
    native_context: int | None = None
    thinking: bool = Field(description="Whether `thinking: true` is available (a prompt file is configured).")
    pools: list[str]


class ModelList(BaseModel):
    object: str
    data: list[ModelCard]


class PoolList(BaseModel):
    object: str
    data: list[dict[str, Any]]


# Errors any route may answer: a missing key (with auth on) and a body over
# ingress.max_body_bytes (refused from its Content-Length on every route).
COMMON_ERRORS = (ErrorCode.INVALID_API_KEY, ErrorCode.BODY_TOO_LARGE)
# Errors of every request that reaches an engine, and of its body.
BODY_ERRORS = (ErrorCode.INVALID_BODY, ErrorCode.INVALID_ENCODING, ErrorCode.INVALID_REQUEST)
ENGINE_ERRORS = (
    ErrorCode.INVALID_HEADER, ErrorCode.ENGINE_REJECTED, ErrorCode.MODEL_NOT_FOUND,
    ErrorCode.CONTEXT_LENGTH_EXCEEDED, ErrorCode.POOL_OVERLOADED, ErrorCode.POOL_UNAVAILABLE,
    ErrorCode.ENGINE_FAILED, ErrorCode.TIMEOUT,
)


# One server-sent event (OpenAPI before 3.2 has the stream's `schema` describe
# each event): `data` is a JSON chunk, an {"error": ...} body, or [DONE].
SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
}


def _error_schema(codes: list[ErrorCode]) -> dict[str, Any]:
    """ErrorResponse with ``code`` narrowed to ``codes`` (inline: no references to resolve)."""
    return {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["message", "type", "code", "param"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "code": {"type": "string", "enum": [c.value for c in codes]},
                "param": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            },
        }},
    }


def answers(success: type[BaseModel] | None, *errors: Iterable[ErrorCode] | ErrorCode, status: int = 200,
            stream: bool = False, keepalive: bool = False, auth: bool = True) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=``: its success body (and SSE when ``stream``) and
    every error status it may answer, each listing its codes.

    ``keepalive``: an error after the keep-alive committed a 200 arrives as the
    200's body (deployments/dispatch/keepalive.py), so the 200 may be an error.
    ``auth``: the route needs an API key when keys are on (all but /healthz).
    """
    codes: list[ErrorCode] = [c for c in COMMON_ERRORS if auth or c != ErrorCode.INVALID_API_KEY]
    for group in errors:
        for code in ([group] if isinstance(group, ErrorCode) else group):
            if code not in codes:
                codes.append(code)
    out: dict[int | str, dict[str, Any]] = {}
    if success is not None:
        entry: dict[str, Any] = {"model": success, "description": "Success."}
        if keepalive:
            entry = {"model": success | ErrorResponse,
                     "description": "Success; or, after a keep-alive committed the status, an error body."}
        if stream:
            entry["description"] += " Server-sent events when `stream: true`."
            entry["content"] = {"text/event-stream": {"schema": SSE_EVENT}}
        out[status] = entry
    for code_status in sorted({c.status for c in codes}):
        these = [c for c in codes if c.status == code_status]
        out[code_status] = {
            "description": "; ".join(f"`{c}`: {c.meaning}" for c in these),
            "content": {"application/json": {"schema": _error_schema(these)}},
        }
    return out
