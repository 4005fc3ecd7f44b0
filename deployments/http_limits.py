"""Request-body size limit, enforced while the body streams in.

A Content-Length over the limit is refused before reading anything; a
chunked body is counted as it arrives and refused as soon as it passes the
limit, so an oversized upload never sits whole in memory.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.errors import APIError, ErrorCode


class BodyTooLarge(APIError):
    def __init__(self, size: str, limit: int):
        super().__init__(ErrorCode.BODY_TOO_LARGE, f"request body of {size} bytes exceeds the limit of {limit} bytes")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode() or None
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            # The metrics middleware (outside this one) reads the code from the request's state.
            scope.setdefault("state", {})["error_code"] = ErrorCode.BODY_TOO_LARGE
            await self._refuse(send, BodyTooLarge(declared, self.limit))
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(f"more than {self.limit}", self.limit)
            return message

        await self.app(scope, counted, send)

    @staticmethod
    async def _refuse(send: Send, error: APIError) -> None:
        body = json.dumps(error.body()).encode()
        await send({"type": "http.response.start", "status": error.status_code,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
