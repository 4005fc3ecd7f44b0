"""The ingress's HTTP middlewares: body limit, API keys, the answered-request
metrics, and the header naming the ingress replica.

Starlette runs the last added outermost, so every answer (a 401 or 413
included) passes the metrics and names its replica, and the key check runs
before a body is read.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from ray import serve
from ray.serve.exceptions import RayServeException

from deployments.auth import KeyRing
from deployments.errors import APIError, ErrorCode
from deployments.http_limits import BodyLimitMiddleware
from deployments.dispatch.relay import POOL_HEADER
from deployments.metrics import RouterMetrics

# Paths a load balancer or kubelet probes without a key.
UNAUTHENTICATED_PATHS = frozenset({"/healthz"})
# Which ingress replica answered (Serve's replica id, as in its logs and the
# replica label of its metrics): with several replicas, an operator can tie a
# client's failed request to one replica's logs.
INGRESS_REPLICA_HEADER = "x-longctx-ingress-replica"


def ingress_replica_id() -> str | None:
    """This Serve replica's id; None outside Serve (an app under test)."""
    try:
        return serve.get_replica_context().replica_id.unique_id
    except RayServeException:
        return None


def install_middlewares(app: FastAPI, *, keys: KeyRing | None, metrics: RouterMetrics, max_body_bytes: int) -> None:
    app.add_middleware(BodyLimitMiddleware, limit=max_body_bytes)

    @app.middleware("http")
    async def _authenticate(request: Request, call_next):
        if keys is None or request.url.path in UNAUTHENTICATED_PATHS:
            request.state.principal = None
            return await call_next(request)
        principal = keys.principal(request.headers.get("authorization"))
        if principal is None:
            request.state.error_code = ErrorCode.INVALID_API_KEY
            return APIError(
                ErrorCode.INVALID_API_KEY, "missing or invalid API key: send 'Authorization: Bearer <key>'",
                headers={"www-authenticate": "Bearer"},
            ).response()
        request.state.principal = principal
        return await call_next(request)

    @app.middleware("http")
    async def _observe(request: Request, call_next):
        response = await call_next(request)
        if request.url.path.startswith("/v1/") and request.method == "POST":
            metrics.answered(
                getattr(request.state, "model", "unknown"),
                response.headers.get(POOL_HEADER, ""),
                response.status_code,
                getattr(request.state, "error_code", None),
            )
        return response

    @app.middleware("http")
    async def _name_replica(request: Request, call_next):
        response = await call_next(request)
        replica = ingress_replica_id()
        if replica is not None:
            response.headers[INGRESS_REPLICA_HEADER] = replica
        return response
