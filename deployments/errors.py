"""OpenAI-style errors: every client mistake becomes a 4xx JSON body.

Body shape: {"error": {"message", "type", "code", "param"}}. ``code`` is
always one of ``ErrorCode``, the API's one error vocabulary: each code has
one HTTP status, raisers name the code and the status follows from it, the
metrics count refusals by it, and docs/api.md lists every code
(tests/deployments/test_errors.py keeps the table in step). Handlers are
installed on the ingress app so validation errors, unknown routes and
unexpected failures never leak a stack trace.
"""

from __future__ import annotations

import json
import logging
import re
from enum import StrEnum

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

logger = logging.getLogger("longctx.errors")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "request_too_large",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


class ErrorCode(StrEnum):
    """Every ``error.code`` the API answers, with its HTTP status and when it is given."""

    status: int
    meaning: str

    def __new__(cls, value: str, status: int, meaning: str):
        member = str.__new__(cls, value)
        member._value_ = value
        member.status = status
        member.meaning = meaning
        return member

    INVALID_BODY = "invalid_body", 400, "the body cannot be parsed: not JSON, or a broken multipart form"
    INVALID_PARAMETER_COMBINATION = (
        "invalid_parameter_combination", 400,
        "fields that are valid alone but not together (`stream_options` without `stream: true`, "
        "`prompt_logprobs` with `stream: true`, `top_logprobs` without `logprobs`)",
    )
    INVALID_TOKEN_ID = "invalid_token_id", 400, "a token-id prompt holds an id below 0 or outside the vocabulary"
    THINKING_NOT_CONFIGURED = (
        "thinking_not_configured", 400,
        "`thinking: true` for a model without `thinking_system_prompt_file` in its configuration",
    )
    INVALID_HEADER = "invalid_header", 400, "a request header the API reads has a value it does not accept"
    INVALID_CURSOR = "invalid_cursor", 400, "the `after` cursor of `GET /v1/documents` is not one the API gave"
    ENGINE_REJECTED = "engine_rejected", 400, "the engine refused a request the ingress admitted"
    INVALID_API_KEY = "invalid_api_key", 401, "no `Authorization: Bearer` key, or an unknown one"
    NOT_FOUND = "not_found", 404, "no such route"
    MODEL_NOT_FOUND = "model_not_found", 404, "the model is not served (the message lists those that are)"
    DOCUMENT_NOT_FOUND = "document_not_found", 404, "no such document, or another API key's document"
    METHOD_NOT_ALLOWED = "method_not_allowed", 405, "the route exists, not with this method"
    DOCUMENT_EXISTS = "document_exists", 409, "a different document already has this id"
    CONTEXT_LENGTH_EXCEEDED = (
        "context_length_exceeded", 413,
        "prompt + `max_tokens` over every pool of the model (`param`: `messages`, `prompt` or `question(s)`)",
    )
    BODY_TOO_LARGE = "body_too_large", 413, "the body is over `ingress.max_body_bytes`"
    DOCUMENT_TOO_LARGE = (
        "document_too_large", 413, "a document over a store limit or too long for every pool of the model",
    )
    STORE_FULL = "store_full", 413, "the store is at `max_documents`, `max_documents_per_owner` or `max_total_bytes`"
    INVALID_ENCODING = "invalid_encoding", 415, "the body or the document is not valid UTF-8"
    UNSUPPORTED_MEDIA_TYPE = (
        "unsupported_media_type", 415,
        "`POST /v1/documents` with a content type other than `application/json` or `multipart/form-data`",
    )
    INVALID_REQUEST = (
        "invalid_request", 422, "wrong types, missing or unknown fields, values out of range (`param` names the field)",
    )
    INVALID_DOCUMENT = "invalid_document", 422, "an empty document"
    POOL_OVERLOADED = "pool_overloaded", 429, "the pool is at its admission limit (`Retry-After`)"
    INTERNAL_ERROR = "internal_error", 500, "a fault of the ingress itself (logged with its stack trace)"
    POOL_UNAVAILABLE = "pool_unavailable", 503, "the pool has no running replica (`Retry-After`)"
    ENGINE_FAILED = (
        "engine_failed", 503,
        "the engine died, before its first token or while streaming (`Retry-After` when not yet committed)",
    )
    STORE_UNAVAILABLE = "store_unavailable", 503, "the document store cannot be reached"
    TIMEOUT = "timeout", 504, "no token from the engine within the pool's `request_timeout_s`"


class APIError(Exception):
    """An error answered to the client as-is; its status is the code's."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.param = param
        self.headers = headers or {}

    @property
    def status_code(self) -> int:
        return self.code.status

    def body(self) -> dict:
        return error_body(self.code, self.message, param=self.param)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status_code, headers=self.headers)


def error_body(code: ErrorCode, message: str, *, param: str | None = None) -> dict:
    status = code.status
    return {
        "error": {
            "message": message,
            "type": _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            "code": code.value,
            "param": param,
        }
    }


def sse_error_event(code: ErrorCode, message: str) -> str:
    return f"data: {json.dumps(error_body(code, message))}\n\n"


def combination_error(param: str, rule: str) -> PydanticCustomError:
    """A request-model validator's refusal of fields that are valid alone but
    not together: answered 400 ``invalid_parameter_combination`` naming
    ``param``, not the 422 of a field's own type or range."""
    return PydanticCustomError(ErrorCode.INVALID_PARAMETER_COMBINATION.value, "{param}: {rule}",
                               {"param": param, "rule": rule})


def encoding_error(param: str, position: int) -> PydanticCustomError:
    """A request-model validator's refusal of a string no UTF-8 text holds (a
    lone surrogate): answered 415 ``invalid_encoding`` naming ``param``."""
    return PydanticCustomError(ErrorCode.INVALID_ENCODING.value,
                               "{param}: not valid Unicode text (a lone surrogate at position {position})",
                               {"param": param, "position": position})


def validation_error(errors: list[dict]) -> APIError:
    """The answer to a body that failed its request model (pydantic's ``errors()``).

    Not JSON: 400 ``invalid_body``; fields valid alone but not together: 400
    ``invalid_parameter_combination``; any other shape or range error: 422
    ``invalid_request``. ``param`` names the first field at fault.
    """
    for err in errors:
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "malformed JSON")
            where = f" (at position {err['loc'][-1]})" if len(err.get("loc", ())) > 1 else ""
            return APIError(ErrorCode.INVALID_BODY, f"request body is not valid JSON: {reason}{where}")
    for err in errors:
        if err.get("type") in (ErrorCode.INVALID_PARAMETER_COMBINATION, ErrorCode.INVALID_ENCODING):
            ctx = err.get("ctx") or {}
            return APIError(ErrorCode(err["type"]), f"invalid request: {err.get('msg')}", param=ctx.get("param") or None)
    parts: dict[str, None] = {}
    param = None
    for err in errors:
        loc = _field_path(err.get("loc", ()))
        where = ".".join(loc) or "body"
        param = param or (where if loc else None)
        parts[f"{where}: {err.get('msg')}"] = None
    return APIError(ErrorCode.INVALID_REQUEST, "invalid request: " + "; ".join(list(parts)[:10]), param=param)


# Pydantic names the member of a union a value failed in its error's location
# (`stop.list[constrained-str].1`); a client knows the field, not the member.
_UNION_MEMBER = re.compile(r"^(str|int|float|bool|list|dict|none|.*[\[\]-].*)$")


def _field_path(loc) -> list[str]:
    return [str(p) for p in loc if p != "body" and not (isinstance(p, str) and _UNION_MEMBER.match(p))]


# Starlette's own HTTP errors (routing, body parsing), by status.
_HTTP_CODES = {
    400: ErrorCode.INVALID_BODY,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.BODY_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
}


def install_error_handlers(app: FastAPI) -> None:
    # request.state.error_code lets the metrics middleware name the reason.
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        request.state.error_code = exc.code
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return await _api_error(request, validation_error(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        # FastAPI wraps any failure while reading the body in a bare 400;
        # the cause says what the client actually did wrong.
        cause = exc.__cause__
        if isinstance(cause, APIError):
            return await _api_error(request, cause)
        if isinstance(cause, UnicodeDecodeError):
            return await _api_error(request, APIError(
                ErrorCode.INVALID_ENCODING, "request body is not valid UTF-8; JSON bodies must be UTF-8 encoded"))
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        code = _HTTP_CODES.get(exc.status_code, ErrorCode.INVALID_REQUEST)
        return await _api_error(request, APIError(code, message, headers=dict(exc.headers or {})))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return await _api_error(request, APIError(ErrorCode.INTERNAL_ERROR,
                                                  "internal error; the request was not completed"))


def error_code_table() -> str:
    """The error-code table of docs/api.md, by status (tests/deployments/test_errors.py keeps the two equal)."""
    rows = ["| code | status | when |", "|---|---|---|"]
    rows += [f"| `{c}` | {c.status} | {c.meaning} |" for c in sorted(ErrorCode, key=lambda c: c.status)]
    return "\n".join(rows) + "\n"
