"""OpenAI-style errors: every client mistake becomes a 4xx JSON body.

Body shape: {"error": {"message", "type", "code", "param"}}. Handlers are
installed on the ingress app so validation errors, unknown routes and
unexpected failures never leak a stack trace.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

logger = logging.getLogger("longctx.errors")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "request_too_large",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


class APIError(Exception):
    """An error answered to the client as-is."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict:
        return error_body(self.status_code, self.message, code=self.code, param=self.param)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status_code, headers=self.headers)


def error_body(status_code: int, message: str, *, code: str | None = None, param: str | None = None) -> dict:
    return {
        "error": {
            "message": message,
            "type": _TYPES.get(status_code, "server_error" if status_code >= 500 else "invalid_request_error"),
            "code": code,
            "param": param,
        }
    }


def sse_error_event(status_code: int, message: str, code: str | None = None) -> str:
    return f"data: {json.dumps(error_body(status_code, message, code=code))}\n\n"


def _describe_validation(exc: RequestValidationError) -> tuple[str, str | None]:
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "malformed JSON")
            return f"request body is not valid JSON: {reason} (at position {err['loc'][-1]})", None
    parts = []
    param = None
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        where = ".".join(loc) or "body"
        param = param or (where if loc else None)
        parts.append(f"{where}: {err.get('msg')}")
    return "invalid request: " + "; ".join(parts[:10]), param


def install_error_handlers(app: FastAPI) -> None:
    # request.state.error_code lets the metrics middleware name the reason.
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        request.state.error_code = exc.code
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        request.state.error_code = "invalid_request"
        message, param = _describe_validation(exc)
        # A body that is not JSON at all is a 400; a JSON body of the wrong
        # shape is a 422, as FastAPI reports it.
        status = 400 if any(e.get("type") == "json_invalid" for e in exc.errors()) else 422
        return APIError(status, message, code="invalid_request", param=param).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        # FastAPI wraps any failure while reading the body in a bare 400;
        # the cause says what the client actually did wrong.
        cause = exc.__cause__
        if isinstance(cause, APIError):
            return await _api_error(request, cause)
        if isinstance(cause, UnicodeDecodeError):
            request.state.error_code = "invalid_encoding"
            return APIError(415, "request body is not valid UTF-8; JSON bodies must be UTF-8 encoded",
                            code="invalid_encoding").response()
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return APIError(exc.status_code, message, headers=dict(exc.headers or {})).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return APIError(500, "internal error; the request was not completed", code="internal_error").response()
